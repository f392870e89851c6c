package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan"
	"github.com/plinth-dev/plinth/internal/sign"
)

// CatalogSigner signs approved digests and attaches plinth's attestations;
// *sign.Signer is one. Publishing unchanged content pushes nothing.
type CatalogSigner interface {
	Publish(ctx context.Context, image name.Digest, key *sign.Key, p sign.Publication, reg sign.Registry) (sign.Published, error)
}

// signApproved is the step after re-judging the approved digest: when the
// policy signs, it signs the approved digest and attaches the approval, the
// vulnerability report and the SBOM. It signs only a digest judged approved
// in this reconcile, so an approval that is revoked is never re-signed and
// its validUntil runs out. The approval's validUntil is renewed when the
// verdict's evidence changes (DB version, policy generation, key) or when
// less than one rescan interval of validity is left; otherwise the same
// content is published again, which pushes nothing.
func (r *BaseImageReconciler) signApproved(ctx context.Context, s *scope) {
	bi := s.bi
	st := &bi.Status
	sp := s.policy.Spec.Signing
	if sp == nil {
		removeCondition(bi, catalogv1.SignedCondition)
		st.Signature = nil
		return
	}
	if r.Signer == nil || r.Scanning == nil {
		setCondition(bi, catalogv1.SignedCondition, metav1.ConditionFalse, catalogv1.SigningDisabledReason,
			"The policy signs approved digests, but plinth runs without scanning: there is no report or SBOM to attest")
		return
	}
	ad := st.ApprovedDigest
	if ad == "" {
		st.Signature = nil
		setCondition(bi, catalogv1.SignedCondition, metav1.ConditionFalse, catalogv1.NothingToSignReason, "No digest is approved")
		return
	}
	verdict, report := s.verdict, s.scan.report
	if ad != s.digest {
		verdict, report = s.approvedVerdict, s.approvedReport
	}
	if verdict == nil || !verdict.Approved || report == nil || st.Approved == nil {
		// Not judged in this reconcile: what was signed stays as it is.
		return
	}

	key, err := r.signingKey(ctx, bi.Namespace, sp.KeySecretRef.Name)
	if err != nil {
		s.signFailed(err, s.interval)
		return
	}
	// sameApproval: the recorded signature approves this digest, with this
	// key, DB and policy generation; only its validity may be renewed.
	prev := st.Signature
	sameApproval := prev != nil && prev.Digest == ad && prev.KeyFingerprint == key.Fingerprint() &&
		prev.VulnDBVersion == report.DBVersion && prev.PolicyGeneration == s.policy.Generation
	validUntil := s.now.Add(s.interval + sp.ValidityGraceOrDefault())
	if sameApproval && prev.ValidUntil.Sub(s.now) > s.interval {
		validUntil = prev.ValidUntil.Time
	}
	pub := sign.Publication{
		Approval: sign.Approval{
			Policy:           s.policy.Name,
			PolicyGeneration: s.policy.Generation,
			Verdict:          sign.VerdictApproved,
			Digest:           ad,
			VulnDBVersion:    report.DBVersion,
			Exceptions:       appliedExceptions(verdict),
			ApprovedAt:       st.Approved.ApprovedAt.Time,
			ValidUntil:       validUntil,
		},
		Scanner:             sign.Scanner{Name: r.Scanning.ScannerName, Version: r.Scanning.ScannerVersion, DBVersion: report.DBVersion},
		Findings:            attestedFindings(report),
		ScannedAt:           report.ScannedAt,
		SBOM:                report.SBOM,
		SignatureRepository: string(sp.Repository),
	}
	if sp.TransparencyLog != nil {
		pub.TransparencyLog = sp.TransparencyLog.URL
	}
	if !sameApproval || !prev.ValidUntil.Time.Equal(validUntil.UTC().Truncate(time.Second)) {
		// A new signature or approval goes out only from the current
		// status: one computed from a stale cached copy would push what the
		// status write then refuses, and leave the registry ahead of it.
		if err := r.current(ctx, bi); err != nil {
			s.retryErr = err
			return
		}
	}
	keychain, err := r.pushKeychain(ctx, s)
	if err != nil {
		s.signFailed(err, s.interval)
		return
	}
	tr, err := r.Registry.Transport(s.access)
	if err != nil {
		s.signFailed(err, s.interval)
		return
	}
	published, err := r.Signer.Publish(ctx, s.ref.Context().Digest(ad), key, pub, sign.Registry{Transport: tr, Keychain: keychain})
	if err != nil {
		s.signFailed(pushRefused(err, sp), s.interval)
		return
	}
	st.Signature = &catalogv1.SignatureStatus{
		Digest: ad, KeyFingerprint: published.KeyFingerprint,
		Signature: published.Signature, Attestations: published.Attestations,
		ValidUntil:    metav1.Time{Time: validUntil.UTC().Truncate(time.Second)},
		VulnDBVersion: report.DBVersion, PolicyGeneration: s.policy.Generation,
	}
	setCondition(bi, catalogv1.SignedCondition, metav1.ConditionTrue, catalogv1.SignedReason,
		fmt.Sprintf("Digest %s is signed and attested with key %s", ad, published.KeyFingerprint))
}

// readyAfterSigning makes an approved entry whose signing failed not
// ready: with signing on, Ready means approved and signed.
func (s *scope) readyAfterSigning() {
	p := s.signFailure
	if p == nil || !apimeta.IsStatusConditionTrue(s.bi.Status.Conditions, catalogv1.ReadyCondition) {
		return
	}
	if p.kind == retrying {
		markRetrying(s.bi, p.reason, p.message)
		return
	}
	markStalled(s.bi, p.reason, p.message)
}

// signFailed records a signing failure. Someone must act on a missing or
// unusable key or push Secret, on a registry refusing the push and on a
// transparency log refusing the entry (Stalled, looked at
// again at the policy's interval and when the key's Secret changes);
// anything else (an unreachable registry, the API server) is retried with
// backoff.
func (s *scope) signFailed(err error, interval time.Duration) {
	msg := fmt.Sprintf("Cannot sign the approved digest: %v", err)
	reason := catalogv1.SigningFailedReason
	var pushErr *pushSecretError
	if errors.As(err, &pushErr) {
		reason = pushErr.reason
	}
	setCondition(s.bi, catalogv1.SignedCondition, metav1.ConditionFalse, reason, msg)
	p := &problem{kind: retrying, reason: reason, message: msg, err: err}
	var keyErr *signingKeyError
	if errors.As(err, &keyErr) || pushErr != nil || errors.Is(err, sign.ErrInvalidPublication) || errors.Is(err, sign.ErrTransparencyLogRefused) ||
		(registry.KindOf(err) != "" && !registry.Retryable(err)) {
		p.kind, p.err, p.requeue = stalled, nil, jitter(interval)
	}
	s.signFailure = p
}

// signingKeyError is a catalog key someone must fix.
type signingKeyError struct{ msg string }

func (e *signingKeyError) Error() string { return e.msg }

// signingKey loads the catalog key from its Secret, read without caching;
// the key it holds is parsed once per content of the Secret.
func (r *BaseImageReconciler) signingKey(ctx context.Context, ns, secret string) (*sign.Key, error) {
	var sec corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: secret}, &sec)
	if apierrors.IsNotFound(err) {
		return nil, &signingKeyError{fmt.Sprintf("the signing key Secret %q does not exist", secret)}
	}
	if err != nil {
		return nil, err
	}
	key, err := r.keys.load(sec.Data)
	if err != nil {
		return nil, &signingKeyError{fmt.Sprintf("the signing key Secret %q: %v", secret, err)}
	}
	return key, nil
}

// pushSecretError is a push Secret someone must create or fix; it
// carries the reason to report.
type pushSecretError struct{ reason, msg string }

func (e *pushSecretError) Error() string { return e.msg }

// pushKeychain is the keychain that publishes signatures and attestations:
// the credentials of the policy's push Secret, read without caching, ahead
// of the entry's own; the entry's own when the policy names none.
func (r *BaseImageReconciler) pushKeychain(ctx context.Context, s *scope) (authn.Keychain, error) {
	ref := s.policy.Spec.Signing.PushSecretRef
	if ref == nil {
		return s.access.Keychain, nil
	}
	var sec corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: s.bi.Namespace, Name: ref.Name}, &sec)
	if apierrors.IsNotFound(err) {
		return nil, &pushSecretError{catalogv1.PushSecretNotFoundReason, fmt.Sprintf("the push Secret %q does not exist", ref.Name)}
	}
	if err != nil {
		return nil, err
	}
	kc, err := registry.KeychainFromPullSecrets([]corev1.Secret{sec})
	if err != nil {
		return nil, &pushSecretError{catalogv1.PushSecretInvalidReason, "the push Secret cannot be used: " + strings.TrimPrefix(err.Error(), registry.ErrInvalidPullSecret.Error()+": ")}
	}
	if s.access.Keychain == nil {
		return kc, nil
	}
	return authn.NewMultiKeychain(kc, s.access.Keychain), nil
}

// pushRefused adds to a registry's refusal of credentials which ones were
// used, so that the message points at the Secret to fix.
func pushRefused(err error, sp *catalogv1.SigningPolicy) error {
	if registry.KindOf(err) != registry.KindUnauthorized {
		return err
	}
	if sp.PushSecretRef != nil {
		return fmt.Errorf("%w, with the credentials of push Secret %q", err, sp.PushSecretRef.Name)
	}
	return fmt.Errorf("%w, with the BaseImage's pull credentials (signing.pushSecretRef names a Secret with push credentials)", err)
}

// appliedExceptions are the exceptions a verdict relied on, as attested.
func appliedExceptions(v *policy.Verdict) []sign.AppliedException {
	out := make([]sign.AppliedException, 0, len(v.ExceptionsApplied))
	for _, e := range v.ExceptionsApplied {
		out = append(out, sign.AppliedException{ID: e.ID, Expires: e.Expires})
	}
	return out
}

// attestedFindings are a report's findings in the vuln attestation's form.
func attestedFindings(r *scan.Report) []sign.Finding {
	out := make([]sign.Finding, 0, len(r.Findings))
	for _, f := range r.Findings {
		out = append(out, sign.Finding{ID: f.ID, Severity: f.Severity, Package: f.Package, Installed: f.InstalledVersion, Fixed: f.FixedVersion})
	}
	return out
}

// current checks that bi is the object as stored, not a stale cached copy:
// a conflict error says it changed meanwhile.
func (r *BaseImageReconciler) current(ctx context.Context, bi *catalogv1.BaseImage) error {
	var live catalogv1.BaseImage
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(bi), &live); err != nil {
		return err
	}
	if live.ResourceVersion != bi.ResourceVersion {
		return staleCopyError{apierrors.NewConflict(catalogv1.GroupVersion.WithResource("baseimages").GroupResource(), bi.Name, errStaleCopy)}
	}
	return nil
}

// errStaleCopy says a reconcile started from a copy of the entry older than
// the one stored.
var errStaleCopy = errors.New("the BaseImage changed since it was read")

// staleCopyError is a conflict that is errStaleCopy.
type staleCopyError struct{ *apierrors.StatusError }

func (e staleCopyError) Is(target error) bool { return target == errStaleCopy }
