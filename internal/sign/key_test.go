package sign

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/sigstore/cosign/v2/pkg/cosign"
)

func TestLoadKey(t *testing.T) {
	secret := testSecret(t)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, _ := x509.MarshalECPrivateKey(p256)
	sec1PEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
	garbledCosign := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte("not json")})

	for _, tc := range []struct {
		name       string
		data       map[string][]byte
		passphrase []byte
		want       error
	}{
		{"cosign key with the Secret's password", secret, nil, nil},
		{"cosign key with the passphrase argument", map[string][]byte{"cosign.key": secret["cosign.key"]}, []byte("s3cret"), nil},
		{"passphrase argument wins over the Secret", secret, []byte("wrong"), ErrKeyPassphrase},
		{"wrong password in the Secret", map[string][]byte{"cosign.key": secret["cosign.key"], "cosign.password": []byte("nope")}, nil, ErrKeyPassphrase},
		{"no password at all", map[string][]byte{"cosign.key": secret["cosign.key"]}, nil, ErrKeyPassphrase},
		{"plain P-256 in tls.key", map[string][]byte{"tls.key": pkcs8(p256), "tls.crt": []byte("x")}, nil, nil},
		{"SEC 1 P-256 in key.pem", map[string][]byte{"key.pem": sec1PEM}, nil, nil},
		{"plain key in cosign.key", map[string][]byte{"cosign.key": pkcs8(p256)}, nil, nil},
		{"P-384", map[string][]byte{"tls.key": pkcs8(p384)}, nil, ErrKeyUnsupported},
		{"RSA", map[string][]byte{"tls.key": pkcs8(rsaKey)}, nil, ErrKeyUnsupported},
		{"RSA PKCS #1", map[string][]byte{"tls.key": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})}, nil, ErrKeyUnsupported},
		{"not PEM", map[string][]byte{"tls.key": []byte("hello")}, nil, ErrKeyMalformed},
		{"public key only", map[string][]byte{"key.pem": secret["cosign.pub"]}, nil, ErrKeyMalformed},
		{"truncated DER", map[string][]byte{"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02}})}, nil, ErrKeyMalformed},
		{"garbled cosign envelope", map[string][]byte{"cosign.key": garbledCosign, "cosign.password": []byte("s3cret")}, nil, ErrKeyMalformed},
		{"missing", map[string][]byte{"cosign.pub": secret["cosign.pub"]}, nil, ErrKeyMissing},
		{"empty entry", map[string][]byte{"tls.key": []byte("  \n")}, nil, ErrKeyMissing},
		{"nil Secret", nil, nil, ErrKeyMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadKey(tc.data, tc.passphrase)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("LoadKey: %v", err)
				}
				if !strings.HasPrefix(k.Fingerprint(), "SHA256:") || !strings.Contains(string(k.PublicKeyPEM()), "PUBLIC KEY") {
					t.Errorf("key %s, public key %q", k.Fingerprint(), k.PublicKeyPEM())
				}
				if fp, _ := FingerprintPEM(k.PublicKeyPEM()); fp != k.Fingerprint() {
					t.Errorf("fingerprint %s, of the public key %s", k.Fingerprint(), fp)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			for _, v := range tc.data {
				if len(v) > 8 && strings.Contains(err.Error(), string(v)) {
					t.Errorf("error %q echoes Secret data", err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error %q echoes key material", err)
			}
		})
	}
}

func TestLoadKeyFingerprintMatchesCosignPub(t *testing.T) {
	secret := testSecret(t)
	k, err := LoadKey(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := FingerprintPEM(secret["cosign.pub"])
	if err != nil {
		t.Fatal(err)
	}
	if k.Fingerprint() != want {
		t.Errorf("fingerprint %s, cosign.pub's %s", k.Fingerprint(), want)
	}
	if s := k.String(); !strings.Contains(s, want) {
		t.Errorf("String() = %q", s)
	}
}

func TestKeyRef(t *testing.T) {
	for ref, want := range map[KeyRef]error{
		"k8s://plinth-system/catalog-signing": nil,
		"k8s://plinth-system":                 ErrKeyRefInvalid,
		"k8s:///name":                         ErrKeyRefInvalid,
		"awskms://alias/plinth":               ErrKMSUnsupported,
		"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k": ErrKMSUnsupported,
		"hashivault://plinth": ErrKMSUnsupported,
		"/etc/cosign.key":     ErrKeyRefInvalid,
	} {
		if err := ref.Validate(); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", ref, err, want)
		}
	}
	ns, name, ok := KeyRef("k8s://plinth-system/catalog-signing").Secret()
	if !ok || ns != "plinth-system" || name != "catalog-signing" {
		t.Errorf("Secret() = %q, %q, %v", ns, name, ok)
	}
}

var (
	keyOnce sync.Once
	keyData map[string][]byte
	keyErr  error
)

// testSecret returns the data of a Secret made by cosign's own key
// generation (encrypted with a password), once per test binary: scrypt is
// slow on purpose.
func testSecret(t testing.TB) map[string][]byte {
	t.Helper()
	keyOnce.Do(func() {
		kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte("s3cret"), nil })
		if err != nil {
			keyErr = err
			return
		}
		keyData = map[string][]byte{"cosign.key": kb.PrivateBytes, "cosign.pub": kb.PublicBytes, "cosign.password": kb.Password()}
	})
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return keyData
}

func testKey(t testing.TB) *Key {
	t.Helper()
	k, err := LoadKey(testSecret(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ed25519Key is a plain PKCS #8 Ed25519 key, as in a tls.key entry.
func ed25519Key(t testing.TB) *Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(map[string][]byte{"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
