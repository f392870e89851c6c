package sign

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A certificate authority whose validity (validFor in trusted_root.json)
// has ended still verifies the signatures made while it was valid, and no
// signature made since; a root in which no authority is valid any more is
// a configuration to fix, not a verdict on the image.
func TestVerifyKeylessAfterTheAuthorityExpired(t *testing.T) {
	e := newVerifyEnv(t)
	ca, current := newVerifyCA(t), newVerifyCA(t)
	now := time.Now()
	issued := now.Add(-time.Hour)
	img := e.push("base/retired", "a")
	signer, certPEM, chainPEM := ca.issueAt(t, verifySubject, verifyIssuer, issued)
	e.sign(img, img, signer, certPEM, chainPEM)
	identity := verifySubject + " from " + verifyIssuer
	trust := func(rootJSON []byte) Trust {
		return Trust{Identities: []Identity{{Issuer: verifyIssuer, Subject: verifySubject}}, TrustedRoot: rootJSON, IgnoreTlog: true, IgnoreSCT: true}
	}
	endedBefore := issued.Add(-time.Hour)

	t.Run("signed before the end", func(t *testing.T) {
		r := mustVerify(t, NewVerifier(VerifierOptions{}), img, trust(trustedRootOf(t, ca.authority(issued.Add(30*time.Minute)))), e.registry())
		wantOutcome(t, r, OutcomeVerified)
	})
	t.Run("signed after the end, another authority current", func(t *testing.T) {
		rootJSON := trustedRootOf(t, ca.authority(endedBefore), current.authority(time.Time{}))
		r := mustVerify(t, NewVerifier(VerifierOptions{}), img, trust(rootJSON), e.registry())
		wantOutcome(t, r, OutcomeSignatureInvalid)
		for _, want := range []string{identity, "issued after the validity of its certificate authority", stamp(endedBefore)} {
			if !strings.Contains(r.Message, want) {
				t.Errorf("message %q does not say %q", r.Message, want)
			}
		}
	})
	t.Run("signed after the end, no authority current", func(t *testing.T) {
		e.reg.ResetCounts()
		rootJSON := trustedRootOf(t, ca.authority(endedBefore), current.authority(endedBefore.Add(-time.Hour)))
		_, err := NewVerifier(VerifierOptions{}).Verify(context.Background(), img, trust(rootJSON), e.registry())
		if !errors.Is(err, ErrTrustedRootExpired) || !errors.Is(err, ErrInvalidTrust) {
			t.Fatalf("error %v, want ErrTrustedRootExpired", err)
		}
		for _, want := range []string{stamp(endedBefore), identity, "replace the trusted root"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if strings.Contains(err.Error(), e.reg.Host) {
			t.Errorf("error names the registry: %q", err)
		}
	})
	t.Run("signed after the end by an untrusted identity", func(t *testing.T) {
		rootJSON := trustedRootOf(t, ca.authority(endedBefore))
		tr := trust(rootJSON)
		tr.Identities = []Identity{{Issuer: verifyIssuer, Subject: "other@example.com"}}
		r := mustVerify(t, NewVerifier(VerifierOptions{}), img, tr, e.registry())
		wantOutcome(t, r, OutcomeSignatureInvalid)
	})
}
