package sign

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Fingerprint identifies a public key: "SHA256:" and the hex SHA-256 of its
// DER (PKIX) encoding.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding the public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + hex.EncodeToString(sum[:]), nil
}

// FingerprintPEM is Fingerprint of a PEM public key.
func FingerprintPEM(pemKey []byte) (string, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		return "", fmt.Errorf("reading the public key: %w", err)
	}
	return Fingerprint(pub)
}
