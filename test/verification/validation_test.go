package verification

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// The API server refuses verification settings plinth could not act on,
// with a message saying what to change.
func TestAPIServerRefusesInvalidVerification(t *testing.T) {
	ns := newNamespace(t)
	const pemKey = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
	root := &catalogv1.TrustedRootSource{ConfigMapRef: &catalogv1.KeyReference{Name: "sigstore", Key: "trusted_root.json"}}
	identity := catalogv1.KeylessIdentity{Issuer: "https://issuer.test", Subject: "release@publisher.test"}
	tests := []struct {
		name    string
		v       catalogv1.VerificationPolicy
		message string // "" means accepted
	}{
		{"inline key without tlog", catalogv1.VerificationPolicy{Keys: []catalogv1.TrustedKey{{PEM: pemKey}}, IgnoreTlog: true}, ""},
		{"keyless with root", catalogv1.VerificationPolicy{Identities: []catalogv1.KeylessIdentity{identity}, TrustedRoot: root}, ""},
		{"disabled and empty", catalogv1.VerificationPolicy{Mode: catalogv1.VerificationDisabled}, ""},
		{"no keys or identities", catalogv1.VerificationPolicy{Mode: catalogv1.VerificationEnforce, IgnoreTlog: true},
			"verification needs keys or identities unless its mode is Disabled"},
		{"no keys or identities, mode defaulted", catalogv1.VerificationPolicy{IgnoreTlog: true},
			"verification needs keys or identities unless its mode is Disabled"},
		{"identities without root: the public one", catalogv1.VerificationPolicy{Identities: []catalogv1.KeylessIdentity{identity}, IgnoreTlog: true}, ""},
		{"pem and secretRef", catalogv1.VerificationPolicy{IgnoreTlog: true, Keys: []catalogv1.TrustedKey{{
			PEM: pemKey, SecretRef: &catalogv1.KeyReference{Name: "k", Key: "cosign.pub"}}}},
			"set either pem or secretRef"},
		{"neither pem nor secretRef", catalogv1.VerificationPolicy{IgnoreTlog: true, Keys: []catalogv1.TrustedKey{{}}},
			"set either pem or secretRef"},
		{"tlog without root: the public one", catalogv1.VerificationPolicy{Keys: []catalogv1.TrustedKey{{PEM: pemKey}}}, ""},
		{"issuer and issuerRegExp", catalogv1.VerificationPolicy{TrustedRoot: root, Identities: []catalogv1.KeylessIdentity{{
			Issuer: "https://issuer.test", IssuerRegExp: "issuer", Subject: "release@publisher.test"}}},
			"set either issuer or issuerRegExp"},
		{"no subject", catalogv1.VerificationPolicy{TrustedRoot: root, Identities: []catalogv1.KeylessIdentity{{Issuer: "https://issuer.test"}}},
			"set either subject or subjectRegExp"},
		{"root in both places", catalogv1.VerificationPolicy{Identities: []catalogv1.KeylessIdentity{identity},
			TrustedRoot: &catalogv1.TrustedRootSource{ConfigMapRef: root.ConfigMapRef, SecretRef: root.ConfigMapRef}},
			"set either configMapRef or secretRef"},
		{"unknown mode", catalogv1.VerificationPolicy{Mode: "Audit", Keys: []catalogv1.TrustedKey{{PEM: pemKey}}, IgnoreTlog: true},
			`Unsupported value: "Audit"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.v
			p := &catalogv1.ImagePolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("p%d", i)},
				Spec:       catalogv1.ImagePolicySpec{Verification: &v},
			}
			err := k8sClient.Create(context.Background(), p)
			switch {
			case tt.message == "" && err != nil:
				t.Fatalf("refused a valid policy: %v", err)
			case tt.message != "" && err == nil:
				t.Fatalf("accepted an invalid policy")
			case tt.message != "" && !strings.Contains(err.Error(), tt.message):
				t.Fatalf("error %q does not say %q", err, tt.message)
			case err != nil:
				t.Logf("refused: %v", err)
			}
		})
	}
}

// The API server refuses a transparency log that is not an http(s) URL.
func TestAPIServerRefusesInvalidTransparencyLog(t *testing.T) {
	ns := newNamespace(t)
	for i, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://rekor.example.com", true},
		{"http://127.0.0.1:3000/", true},
		{"rekor.example.com", false},
		{"https://rekor.example.com/?token=1", false},
		{"", false},
	} {
		p := &catalogv1.ImagePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("tlog%d", i)},
			Spec: catalogv1.ImagePolicySpec{Signing: &catalogv1.SigningPolicy{
				KeySecretRef:    catalogv1.LocalObjectReference{Name: "catalog-key"},
				PushSecretRef:   &catalogv1.LocalObjectReference{Name: "catalog-push"},
				TransparencyLog: &catalogv1.TransparencyLogPolicy{URL: tt.url},
			}},
		}
		err := k8sClient.Create(context.Background(), p)
		if (err == nil) != tt.ok {
			t.Errorf("url %q: error %v, want accepted=%v", tt.url, err, tt.ok)
		}
	}
}
