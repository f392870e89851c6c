package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// KeyRef names where the catalog's signing key lives: a Kubernetes Secret
// now, a KMS URI later.
//
// Today the only form is "k8s://<namespace>/<name>" (cosign's own spelling
// for a key pair kept in a Secret); the controller reads that Secret and
// hands its data to LoadKey. KMS URIs (awskms://, gcpkms://, azurekms://,
// hashivault://), whose private key never leaves the KMS, are recognised
// so that a policy naming one gets a clear ErrKMSUnsupported rather than a
// parse error, but not implemented.
type KeyRef string

// KeyRefSecretScheme prefixes a KeyRef naming a Kubernetes Secret.
const KeyRefSecretScheme = "k8s://"

var kmsSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"}

// Secret returns the namespace and name of the Secret r names, and false
// when r does not name a Secret in the "k8s://<namespace>/<name>" form.
func (r KeyRef) Secret() (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(string(r), KeyRefSecretScheme)
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, "/")
	if !ok || namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return namespace, name, true
}

// IsKMS reports whether r is a KMS URI.
func (r KeyRef) IsKMS() bool {
	for _, s := range kmsSchemes {
		if strings.HasPrefix(string(r), s) {
			return true
		}
	}
	return false
}

// Validate returns nil when r names a Secret, ErrKMSUnsupported for a KMS
// URI and an ErrKeyRefInvalid otherwise.
func (r KeyRef) Validate() error {
	if _, _, ok := r.Secret(); ok {
		return nil
	}
	if r.IsKMS() {
		return ErrKMSUnsupported
	}
	return ErrKeyRefInvalid
}

// Errors LoadKey and KeyRef.Validate return. Each is a stable sentence fit
// for a status condition; none carries key material. Match them with
// errors.Is.
var (
	// ErrKeyMissing: the Secret holds no private key under any of the
	// names LoadKey reads.
	ErrKeyMissing = errors.New("signing key missing: the Secret has no cosign.key, tls.key or key.pem")
	// ErrKeyPassphrase: the cosign-encrypted key does not decrypt with the
	// passphrase given (or with the Secret's cosign.password).
	ErrKeyPassphrase = errors.New("signing key does not decrypt: wrong passphrase")
	// ErrKeyMalformed: the key is not a PEM private key LoadKey can parse.
	ErrKeyMalformed = errors.New("signing key malformed: not a PEM private key")
	// ErrKeyUnsupported: the key parses but is neither ECDSA P-256 nor
	// Ed25519.
	ErrKeyUnsupported = errors.New("signing key type unsupported: use ECDSA P-256 or Ed25519")
	// ErrKMSUnsupported: the key reference is a KMS URI, not supported yet.
	ErrKMSUnsupported = errors.New("signing key in a KMS is not supported yet: use a Secret")
	// ErrKeyRefInvalid: the key reference is neither k8s://<namespace>/<name>
	// nor a KMS URI.
	ErrKeyRefInvalid = errors.New("signing key reference invalid: use k8s://<namespace>/<name>")
)

// Names of the Secret data LoadKey reads.
const (
	// SecretKeyCosign holds a cosign-encrypted private key (as written by
	// "cosign generate-key-pair k8s://…") or a plain PEM private key.
	SecretKeyCosign = "cosign.key"
	// SecretKeyPassword holds the passphrase of a cosign-encrypted key.
	SecretKeyPassword = "cosign.password"
	// SecretKeyTLS holds a plain PEM private key, as in a kubernetes.io/tls
	// Secret (cert-manager can issue one).
	SecretKeyTLS = "tls.key"
	// SecretKeyPEM holds a plain PEM private key.
	SecretKeyPEM = "key.pem"
)

// Key is a loaded signing key. It is safe for concurrent use.
type Key struct {
	sv          signature.SignerVerifier
	pubPEM      []byte
	fingerprint string
}

// LoadKey reads a private signing key from a Secret's data. It looks, in
// order, for cosign.key, tls.key and key.pem. A cosign-encrypted key
// ("ENCRYPTED SIGSTORE PRIVATE KEY" or "ENCRYPTED COSIGN PRIVATE KEY") is
// decrypted with passphrase when it is not nil, else with the Secret's
// cosign.password (an empty passphrase when neither is there). A plain PEM
// key may be PKCS #8 ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"). Only
// ECDSA P-256 and Ed25519 keys are accepted.
//
// Errors wrap ErrKeyMissing, ErrKeyPassphrase, ErrKeyMalformed or
// ErrKeyUnsupported and name at most the Secret entry read.
func LoadKey(data map[string][]byte, passphrase []byte) (*Key, error) {
	for _, entry := range []string{SecretKeyCosign, SecretKeyTLS, SecretKeyPEM} {
		raw, ok := data[entry]
		if !ok || len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if passphrase == nil {
			passphrase = data[SecretKeyPassword]
		}
		k, err := parseKey(raw, passphrase)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", entry, err)
		}
		return k, nil
	}
	return nil, ErrKeyMissing
}

func parseKey(raw, passphrase []byte) (*Key, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, ErrKeyMalformed
	}
	var sv signature.SignerVerifier
	switch block.Type {
	case cosign.CosignPrivateKeyPemType, cosign.SigstorePrivateKeyPemType:
		// cosign's envelope is JSON (scrypt parameters, salt, secretbox
		// ciphertext): anything else is malformed, so that a decryption
		// failure below can only mean a wrong passphrase.
		var envelope struct {
			KDF, Cipher json.RawMessage
			Ciphertext  []byte
		}
		if err := json.Unmarshal(block.Bytes, &envelope); err != nil || envelope.KDF == nil || envelope.Cipher == nil || len(envelope.Ciphertext) == 0 {
			return nil, ErrKeyMalformed
		}
		// Explicit, empty load options: Ed25519 keys sign with pure
		// Ed25519, which is what "cosign verify --key" checks.
		s, err := cosign.LoadPrivateKey(raw, passphrase, &[]signature.LoadOption{})
		switch {
		case err == nil:
			sv = s
		case strings.HasPrefix(err.Error(), "decrypt"):
			return nil, ErrKeyPassphrase
		case strings.Contains(err.Error(), "parsing private key"):
			return nil, ErrKeyMalformed
		default:
			return nil, ErrKeyUnsupported
		}
		if err := supported(s.PublicKey()); err != nil {
			return nil, err
		}
	case "PRIVATE KEY", "EC PRIVATE KEY":
		var priv crypto.PrivateKey
		var err error
		if block.Type == "EC PRIVATE KEY" {
			priv, err = x509.ParseECPrivateKey(block.Bytes)
		} else {
			priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			if strings.Contains(err.Error(), "unknown") || strings.Contains(err.Error(), "unsupported") {
				return nil, ErrKeyUnsupported
			}
			return nil, ErrKeyMalformed
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return nil, ErrKeyUnsupported
		}
		if err := supported(signer.Public(), nil); err != nil {
			return nil, err
		}
		sv, err = signature.LoadSignerVerifier(priv, crypto.SHA256)
		if err != nil {
			return nil, ErrKeyUnsupported
		}
	case "RSA PRIVATE KEY":
		return nil, ErrKeyUnsupported
	default:
		// Encrypted PKCS #8 and other PEM blocks.
		return nil, ErrKeyMalformed
	}
	return newKey(sv)
}

// supported accepts ECDSA P-256 and Ed25519 public keys.
func supported(pub crypto.PublicKey, err error) error {
	if err != nil {
		return ErrKeyMalformed
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
	case ed25519.PublicKey:
		return nil
	}
	return ErrKeyUnsupported
}

func newKey(sv signature.SignerVerifier) (*Key, error) {
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, ErrKeyMalformed
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, ErrKeyUnsupported
	}
	fp, err := FingerprintPEM(pubPEM)
	if err != nil {
		return nil, ErrKeyUnsupported
	}
	return &Key{sv: sv, pubPEM: pubPEM, fingerprint: fp}, nil
}

// Fingerprint identifies the key by its public half, as Fingerprint does:
// "SHA256:" and the hex SHA-256 of its PKIX encoding. It is safe to show in
// status and logs.
func (k *Key) Fingerprint() string { return k.fingerprint }

// PublicKeyPEM returns the PEM ("PUBLIC KEY") encoding of the public key,
// the form "cosign verify --key" reads.
func (k *Key) PublicKeyPEM() []byte { return bytes.Clone(k.pubPEM) }

// String names the key by its fingerprint, so that printing a Key never
// shows key material.
func (k *Key) String() string { return "signing key " + k.fingerprint }
