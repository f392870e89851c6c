package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/plinth-dev/plinth/internal/sign"
)

// An unchanged key Secret is parsed once: decrypting a cosign key runs
// scrypt. A Secret with other data (a rotated key, another passphrase)
// is parsed again, and one that does not parse is never remembered.
func TestCatalogKeysAreParsedOncePerSecretContent(t *testing.T) {
	g := NewWithT(t)
	first, second := cosignKeySecret(g, "pass-1"), cosignKeySecret(g, "pass-2")
	var c keyCache

	k1, err := c.load(first)
	g.Expect(err).NotTo(HaveOccurred())
	copied := map[string][]byte{}
	for k, v := range first {
		copied[k] = append([]byte(nil), v...)
	}
	again, err := c.load(copied)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeIdenticalTo(k1), "the same Secret data parsed again")

	k2, err := c.load(second)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k2.Fingerprint()).NotTo(Equal(k1.Fingerprint()))

	wrong := map[string][]byte{sign.SecretKeyCosign: first[sign.SecretKeyCosign], sign.SecretKeyPassword: []byte("not-it")}
	_, err = c.load(wrong)
	g.Expect(err).To(HaveOccurred())
	g.Expect(c.m).To(HaveLen(2), "a key that does not parse is not cached")
}

// cosignKeySecret is the data of a key Secret as `cosign generate-key-pair
// k8s://` writes it.
func cosignKeySecret(g Gomega, password string) map[string][]byte {
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(password), nil })
	g.Expect(err).NotTo(HaveOccurred())
	return map[string][]byte{sign.SecretKeyCosign: kb.PrivateBytes, sign.SecretKeyPassword: []byte(password), "cosign.pub": kb.PublicBytes}
}
