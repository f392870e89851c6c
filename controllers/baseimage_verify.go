package controllers

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/sign"
)

// PublisherVerifier checks publishers' signatures on digests; *sign.Verifier
// is one. Results are cached by digest and trust configuration, so an
// unchanged digest costs no registry request.
type PublisherVerifier interface {
	Verify(ctx context.Context, image name.Digest, t sign.Trust, reg sign.Registry) (sign.Result, error)
	// Forget drops the cached results on image.
	Forget(image name.Digest)
}

// PublicTrustRoot supplies the trusted root for policies that name none:
// the public Sigstore one, fetched with TUF; *sign.PublicRoot is one. It
// returns sign.ErrPublicRootOffline when the operator runs offline.
type PublicTrustRoot interface {
	TrustedRoot(ctx context.Context) ([]byte, error)
}

// verifyPublisher is the step after reading the upstream: when the policy
// verifies publishers, it checks the signature on the resolved digest. The
// verdict step then refuses (Enforce) or flags (Warn) a digest whose
// signature does not check out.
func (r *BaseImageReconciler) verifyPublisher(ctx context.Context, s *scope) {
	bi := s.bi
	s.verifyMode = s.policy.Spec.VerificationModeOrDisabled()
	if s.verifyMode == catalogv1.VerificationDisabled || r.Verifier == nil {
		removeCondition(bi, catalogv1.VerifiedCondition)
		s.verifyMode = catalogv1.VerificationDisabled
		return
	}
	image := s.ref.Context().Digest(s.digest)
	if v, ok := bi.Annotations[catalogv1.ReconcileRequestAnnotation]; ok && v != bi.Status.LastHandledReconcileAt {
		// Someone asked for a check now, perhaps having just signed.
		r.Verifier.Forget(image)
	}
	res, p := r.checkPublisher(ctx, s, image)
	if p != nil {
		s.stop = p
		if p.reason == catalogv1.TrustConfigInvalidReason || p.reason == catalogv1.TrustRootUnavailableReason {
			setCondition(bi, catalogv1.VerifiedCondition, metav1.ConditionUnknown, p.reason, p.message)
		}
		return
	}
	s.publisher = res
	status := metav1.ConditionFalse
	if res.Outcome == sign.OutcomeVerified {
		status = metav1.ConditionTrue
	}
	setCondition(bi, catalogv1.VerifiedCondition, status, string(res.Outcome), res.Message)
}

// checkPublisher verifies the publisher's signature on one digest of the
// entry's repository under the policy's trust.
// The trust is read from its Secrets and ConfigMaps once per reconcile.
func (r *BaseImageReconciler) checkPublisher(ctx context.Context, s *scope, image name.Digest) (*sign.Result, *problem) {
	if s.trust == nil {
		trust, err := trustFor(ctx, r.APIReader, r.PublicRoot, s.bi.Namespace, s.policy)
		var cfgErr *trustConfigError
		if errors.As(err, &cfgErr) {
			return nil, &problem{kind: stalled, reason: catalogv1.TrustConfigInvalidReason, message: cfgErr.Error(), requeue: jitter(s.interval)}
		}
		if errors.Is(err, sign.ErrPublicRootOffline) {
			return nil, &problem{kind: stalled, reason: catalogv1.TrustRootUnavailableReason, requeue: jitter(s.interval),
				message: fmt.Sprintf("ImagePolicy %q names no trustedRoot and needs one, and the operator runs offline (no Sigstore TUF mirror): set verification.trustedRoot", s.policy.Name)}
		}
		if errors.Is(err, sign.ErrPublicRootUnavailable) {
			return nil, &problem{kind: retrying, reason: catalogv1.TrustRootUnavailableReason, err: err,
				message: fmt.Sprintf("ImagePolicy %q names no trustedRoot, and the public Sigstore trusted root cannot be fetched from the TUF mirror now", s.policy.Name)}
		}
		if err != nil {
			return nil, &problem{kind: retrying, reason: catalogv1.TrustConfigInvalidReason, message: "Cannot read the policy's trusted keys", err: err}
		}
		s.trust = &trust
	}
	trust := *s.trust
	tr, err := r.Registry.Transport(s.access)
	if err != nil {
		return nil, registryProblem("image's signatures", err, s.interval)
	}
	res, err := r.Verifier.Verify(ctx, image, trust, sign.Registry{Transport: tr, Keychain: s.access.Keychain})
	if errors.Is(err, sign.ErrInvalidTrust) {
		return nil, &problem{kind: stalled, reason: catalogv1.TrustConfigInvalidReason,
			message: fmt.Sprintf("ImagePolicy %q cannot verify signatures: %v", s.policy.Name, err), requeue: jitter(s.interval)}
	}
	if err != nil {
		return nil, registryProblem("image's signatures", registry.Classify(err), s.interval)
	}
	return &res, nil
}

// requireSignature applies the publisher verification to a verdict on the
// resolved digest: Enforce refuses an approval without a valid signature,
// Warn keeps it and says so.
func (s *scope) requireSignature(v *policy.Verdict) {
	applySignature(v, s.verifyMode, s.digest, s.publisher)
}

// applySignature applies a publisher verification result to a verdict on
// digest.
func applySignature(v *policy.Verdict, mode catalogv1.VerificationMode, digest string, res *sign.Result) {
	if res == nil || res.Outcome == sign.OutcomeVerified || !v.Approved {
		return
	}
	switch mode {
	case catalogv1.VerificationEnforce:
		v.Approved, v.ApprovedReason = false, catalogv1.SignatureRequiredReason
		v.ApprovedMessage = fmt.Sprintf("Digest %s has no valid publisher signature: %s", digest, res.Message)
	case catalogv1.VerificationWarn:
		v.ApprovedMessage += fmt.Sprintf("; the publisher's signature is not verified (%s): %s", res.Outcome, res.Message)
	}
}

// trustConfigError is a policy's verification that cannot be used as it
// is: someone must fix the Secret, ConfigMap or key it names.
type trustConfigError struct{ msg string }

func (e *trustConfigError) Error() string { return e.msg }

// trustFor builds the trust of a policy's verification, reading the keys and
// trusted root it names from Secrets and ConfigMaps without caching them.
// A policy that names no trusted root and needs one gets public's.
func trustFor(ctx context.Context, reader client.Reader, public PublicTrustRoot, ns string, pol *catalogv1.ImagePolicy) (sign.Trust, error) {
	v := pol.Spec.Verification
	t := sign.Trust{IgnoreTlog: v.IgnoreTlog, IgnoreSCT: v.IgnoreSCT}
	for i, k := range v.Keys {
		if k.PEM != "" {
			t.Keys = append(t.Keys, []byte(k.PEM))
			continue
		}
		if k.SecretRef == nil {
			return t, &trustConfigError{fmt.Sprintf("keys[%d] of ImagePolicy %q names no key", i, pol.Name)}
		}
		b, err := secretKey(ctx, reader, ns, *k.SecretRef)
		if err != nil {
			return t, err
		}
		t.Keys = append(t.Keys, b)
	}
	for _, id := range v.Identities {
		t.Identities = append(t.Identities, sign.Identity{Issuer: id.Issuer, IssuerRegExp: id.IssuerRegExp, Subject: id.Subject, SubjectRegExp: id.SubjectRegExp})
	}
	if src := v.TrustedRoot; src != nil {
		var err error
		switch {
		case src.SecretRef != nil:
			t.TrustedRoot, err = secretKey(ctx, reader, ns, *src.SecretRef)
		case src.ConfigMapRef != nil:
			t.TrustedRoot, err = configMapKey(ctx, reader, ns, *src.ConfigMapRef)
		}
		if err != nil {
			return t, err
		}
	} else if (len(t.Identities) > 0 || !t.IgnoreTlog) && public != nil {
		var err error
		if t.TrustedRoot, err = public.TrustedRoot(ctx); err != nil {
			return t, err
		}
	}
	if err := t.Validate(); err != nil {
		return t, &trustConfigError{fmt.Sprintf("ImagePolicy %q cannot verify signatures: %v", pol.Name, err)}
	}
	return t, nil
}

// secretKey reads one key of a Secret.
func secretKey(ctx context.Context, reader client.Reader, ns string, ref catalogv1.KeyReference) ([]byte, error) {
	var s corev1.Secret
	err := reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, &trustConfigError{fmt.Sprintf("Secret %q not found", ref.Name)}
	}
	if err != nil {
		return nil, err
	}
	b, ok := s.Data[ref.Key]
	if !ok || len(b) == 0 {
		return nil, &trustConfigError{fmt.Sprintf("Secret %q has no key %q", ref.Name, ref.Key)}
	}
	return b, nil
}

// configMapKey reads one key of a ConfigMap.
func configMapKey(ctx context.Context, reader client.Reader, ns string, ref catalogv1.KeyReference) ([]byte, error) {
	var cm corev1.ConfigMap
	err := reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, &trustConfigError{fmt.Sprintf("ConfigMap %q not found", ref.Name)}
	}
	if err != nil {
		return nil, err
	}
	if v, ok := cm.Data[ref.Key]; ok && v != "" {
		return []byte(v), nil
	}
	if b, ok := cm.BinaryData[ref.Key]; ok && len(b) > 0 {
		return b, nil
	}
	return nil, &trustConfigError{fmt.Sprintf("ConfigMap %q has no key %q", ref.Name, ref.Key)}
}
