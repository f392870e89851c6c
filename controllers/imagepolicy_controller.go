package controllers

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// ImagePolicyReconciler checks each ImagePolicy and reports whether it is
// valid. BaseImages follow their policy through their own watch.
type ImagePolicyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
}

// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=imagepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=imagepolicies/status,verbs=get;update;patch

// SetupWithManager registers the reconciler.
func (r *ImagePolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&catalogv1.ImagePolicy{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Complete(r)
}

// Reconcile validates one ImagePolicy and records the result.
func (r *ImagePolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pol catalogv1.ImagePolicy
	if err := r.Get(ctx, req.NamespacedName, &pol); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := pol.DeepCopy()

	if err := validatePolicy(&pol.Spec); err != nil {
		markStalled(&pol, catalogv1.InvalidSpecReason, err.Error())
	} else {
		markReady(&pol, "Policy is valid")
	}
	pol.Status.ObservedGeneration = pol.Generation
	now := r.Clock.Now()
	ex := countExceptions(pol.Spec.Exceptions, now)
	pol.Status.Exceptions, pol.Status.ExpiringExceptions = &ex.counts, ex.expiring

	result := ctrl.Result{}
	if !ex.next.IsZero() {
		result.RequeueAfter = ex.next.Sub(now) + time.Second
	}
	if equality.Semantic.DeepEqual(before.Status, pol.Status) {
		return result, nil
	}
	if err := r.Status().Patch(ctx, &pol, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if r.Recorder != nil {
		for _, id := range newlyExpiring(before.Status.ExpiringExceptions, ex.expiring) {
			r.Recorder.Eventf(&pol, nil, corev1.EventTypeWarning, "ExceptionExpiring", "Evaluate",
				"The exception for %s expires within %s", id, catalogv1.ExceptionExpiryWarning)
		}
	}
	return result, nil
}

// exceptionState is what the exceptions of a policy amount to at a time.
type exceptionState struct {
	counts   catalogv1.ExceptionCounts
	expiring []string
	// next is the next time an exception enters its warning period or
	// expires; zero when none will.
	next time.Time
}

// countExceptions counts exceptions as active, expiring (within
// catalogv1.ExceptionExpiryWarning) and expired at now.
func countExceptions(exs []catalogv1.VulnerabilityException, now time.Time) exceptionState {
	var st exceptionState
	soonest := func(t time.Time) {
		if t.After(now) && (st.next.IsZero() || t.Before(st.next)) {
			st.next = t
		}
	}
	for _, e := range exs {
		exp := e.Expires.Time
		warnFrom := exp.Add(-catalogv1.ExceptionExpiryWarning)
		switch {
		case !now.Before(exp):
			st.counts.Expired++
		case !now.Before(warnFrom):
			st.counts.Active++
			st.counts.Expiring++
			if len(st.expiring) < 32 {
				st.expiring = append(st.expiring, e.ID)
			}
		default:
			st.counts.Active++
		}
		soonest(warnFrom)
		soonest(exp)
	}
	return st
}

// newlyExpiring returns the ids in after that are not in before.
func newlyExpiring(before, after []string) []string {
	seen := map[string]bool{}
	for _, id := range before {
		seen[id] = true
	}
	var out []string
	for _, id := range after {
		if !seen[id] {
			out = append(out, id)
		}
	}
	return out
}

// validatePolicy checks what the API server's schema cannot: that every
// allowedRegistries entry is a well-formed glob.
func validatePolicy(spec *catalogv1.ImagePolicySpec) error {
	for i, p := range spec.AllowedRegistries {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("allowedRegistries[%d] %q is not a valid glob pattern", i, p)
		}
	}
	if v := spec.Verification; v != nil {
		for i, id := range v.Identities {
			for _, f := range []struct{ field, re string }{{"issuerRegExp", id.IssuerRegExp}, {"subjectRegExp", id.SubjectRegExp}} {
				if _, err := regexp.Compile(f.re); err != nil {
					return fmt.Errorf("verification.identities[%d].%s %q is not a valid regular expression", i, f.field, f.re)
				}
			}
		}
	}
	for i, p := range spec.AllowedUpstreamRegistries {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("allowedUpstreamRegistries[%d] %q is not a valid glob pattern", i, p)
		}
	}
	return nil
}
