package sign

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// ErrTrustedRootExpired is the ErrInvalidTrust returned when a keyless
// signature by a trusted identity was refused only because every
// certificate authority of the trusted root had stopped being valid (its
// validFor had ended) when the signature's certificate was issued, and
// none is valid now: the trusted root is out of date and must be replaced.
var ErrTrustedRootExpired = fmt.Errorf("%w: the trusted root has expired", ErrInvalidTrust)

// retiredAuthority is a certificate authority of the trusted root whose
// validity ended before a keyless certificate that chains to it was issued.
// Sigstore keeps such an authority in the root so that signatures made
// while it was valid still verify; a certificate it issued later does not.
type retiredAuthority struct {
	name     string    // the subject of the authority's root certificate
	end      time.Time // the end of its validity
	identity string    // the keyless signer, "subject from issuer"
}

// retiredAuthority tells whether a keyless signature that does not verify
// would verify, by a trusted identity, if the authorities of the trusted
// root had no end of validity; it returns the authority that had expired.
func (ct *compiledTrust) retiredAuthority(ctx context.Context, sig oci.Signature, h v1.Hash, cert *x509.Certificate) *retiredAuthority {
	if ct.material == nil {
		return nil
	}
	for _, ca := range ct.material.FulcioCertificateAuthorities() {
		fca, ok := ca.(*root.FulcioCertificateAuthority)
		if !ok || fca.ValidityPeriodEnd.IsZero() || !cert.NotBefore.After(fca.ValidityPeriodEnd) {
			continue
		}
		unbounded := *fca
		unbounded.ValidityPeriodEnd = time.Time{}
		co := ct.checkOpts()
		co.Identities = ct.identities
		co.TrustedMaterial = oneAuthority{TrustedMaterial: ct.material, ca: &unbounded}
		if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err == nil {
			return &retiredAuthority{name: printable(fca.Root.Subject.String()), end: fca.ValidityPeriodEnd, identity: certIdentity(cert)}
		}
	}
	return nil
}

// verdict on an image whose only signature by a trusted identity chains to
// an authority that had expired when it was made. When the trusted root
// still holds an authority valid at now, the signature is invalid: it comes
// from a retired authority. When it holds none, the root itself is out of
// date: an ErrTrustedRootExpired error, which someone must fix.
func (ra *retiredAuthority) verdict(ct *compiledTrust, now time.Time) (Result, error) {
	var last time.Time
	for _, ca := range ct.material.FulcioCertificateAuthorities() {
		fca, ok := ca.(*root.FulcioCertificateAuthority)
		if !ok {
			continue
		}
		if fca.ValidityPeriodEnd.IsZero() || fca.ValidityPeriodEnd.After(now) {
			return Result{
				Outcome: OutcomeSignatureInvalid,
				Message: fmt.Sprintf("signed by %s with a certificate issued after the validity of its certificate authority (%s) ended on %s",
					ra.identity, ra.name, stamp(ra.end)),
			}, nil
		}
		if fca.ValidityPeriodEnd.After(last) {
			last = fca.ValidityPeriodEnd
		}
	}
	return Result{}, fmt.Errorf("%w: every certificate authority in it stopped being valid by %s, and %s signed with a certificate issued since; replace the trusted root with a current one",
		ErrTrustedRootExpired, stamp(last), ra.identity)
}

// stamp formats a time for a message, to the second, in UTC.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// oneAuthority is trusted material with a single certificate authority in
// place of the root's.
type oneAuthority struct {
	root.TrustedMaterial
	ca root.CertificateAuthority
}

// FulcioCertificateAuthorities returns the one authority.
func (o oneAuthority) FulcioCertificateAuthorities() []root.CertificateAuthority {
	return []root.CertificateAuthority{o.ca}
}
