package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/registry"
)

// Registry is what the BaseImage reconciler needs of a registry client.
type Registry interface {
	// Head resolves a tag or digest reference to its descriptor.
	Head(ctx context.Context, ref name.Reference, kc authn.Keychain) (*v1.Descriptor, error)
	// Inspect reads the platforms, creation time and base annotations of a
	// digest.
	Inspect(ctx context.Context, ref name.Digest, kc authn.Keychain, platforms []string) (*registry.ImageInfo, error)
}

// BaseImageReconciler resolves each BaseImage's digest, judges it against
// its ImagePolicy and reports the verdict in status conditions.
type BaseImageReconciler struct {
	client.Client

	// APIReader reads Secrets and ServiceAccounts without caching them.
	APIReader client.Reader
	Registry  Registry
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	// Scanning, when set, judges entries on their vulnerabilities too.
	Scanning *Scanning

	// MaxConcurrentReconciles bounds how many BaseImages are reconciled at
	// once.
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=baseimages,verbs=get;list;watch
// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=baseimages/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=imagepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets;serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler and its watches. SetupIndexes
// must have been called first.
func (r *BaseImageReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.Scanning != nil && r.Scanning.Updates != nil {
		// A new vulnerability DB re-evaluates every entry.
		events := make(chan event.GenericEvent)
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case _, ok := <-r.Scanning.Updates:
					if !ok {
						return nil
					}
					select {
					case events <- event.GenericEvent{Object: &catalogv1.BaseImage{}}:
					case <-ctx.Done():
						return nil
					}
				}
			}
		})); err != nil {
			return err
		}
		b = b.WatchesRawSource(source.Channel(events, handler.EnqueueRequestsFromMapFunc(r.allBaseImages)))
	}
	return b.
		For(&catalogv1.BaseImage{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&catalogv1.ImagePolicy{},
			handler.EnqueueRequestsFromMapFunc(r.baseImagesForPolicy),
			builder.WithPredicates(policyChangedPredicate())).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.baseImagesForSecret)).
		WatchesMetadata(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.baseImagesForServiceAccount)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

// Reconcile brings one BaseImage's status up to date.
func (r *BaseImageReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var bi catalogv1.BaseImage
	if err := r.Get(ctx, req.NamespacedName, &bi); err != nil {
		if apierrors.IsNotFound(err) && r.Scanning != nil {
			r.Scanning.Metrics.ForgetBaseImage(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if bi.Spec.Suspend {
		ctrl.LoggerFrom(ctx).V(1).Info("BaseImage is suspended")
		return ctrl.Result{}, nil
	}
	before := bi.DeepCopy()
	// base is what the next status patch applies to; a progress patch in
	// the middle of the reconcile moves it on.
	base := before
	progress := func(ctx context.Context) error {
		if err := r.Status().Patch(ctx, &bi, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return err
		}
		base = bi.DeepCopy()
		return nil
	}

	result, recErr := r.reconcile(ctx, &bi, progress)
	if apierrors.IsConflict(recErr) || apierrors.IsNotFound(recErr) {
		return conflictResult(ctx, recErr)
	}

	bi.Status.ObservedGeneration = bi.Generation
	if v, ok := bi.Annotations[catalogv1.ReconcileRequestAnnotation]; ok {
		bi.Status.LastHandledReconcileAt = v
	}
	if !equality.Semantic.DeepEqual(base.Status, bi.Status) {
		// The optimistic lock refuses a status computed from a stale cached
		// copy; the retry then starts from the current object.
		if err := progress(ctx); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return conflictResult(ctx, err)
			}
			return ctrl.Result{}, errors.Join(recErr, err)
		}
	}
	if !equality.Semantic.DeepEqual(before.Status, bi.Status) {
		r.recordTransitions(before, &bi)
	}
	return result, recErr
}

// conflictResult handles a status patch refused because the object changed
// or went away meanwhile: a changed object is reconciled again shortly.
func conflictResult(ctx context.Context, err error) (ctrl.Result, error) {
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	}
	ctrl.LoggerFrom(ctx).V(1).Info("BaseImage changed meanwhile, retrying")
	return ctrl.Result{RequeueAfter: wait.Jitter(time.Second, 0.5)}, nil
}

// reconcile gathers observations, decides and sets status. Errors it
// returns are transient and retried with backoff; problems someone must fix
// are reported as Stalled and return no error.
func (r *BaseImageReconciler) reconcile(ctx context.Context, bi *catalogv1.BaseImage, progress func(context.Context) error) (ctrl.Result, error) {
	// Status times are stored to the second; so is now, so that an
	// unchanged observation compares equal.
	now := r.Clock.Now().UTC().Truncate(time.Second)

	// The policy.
	var pol catalogv1.ImagePolicy
	err := r.Get(ctx, types.NamespacedName{Namespace: bi.Namespace, Name: bi.Spec.PolicyRef.Name}, &pol)
	if apierrors.IsNotFound(err) {
		markStalled(bi, catalogv1.PolicyNotFoundReason, fmt.Sprintf("ImagePolicy %q not found", bi.Spec.PolicyRef.Name))
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if c := apimeta.FindStatusCondition(pol.Status.Conditions, catalogv1.ReadyCondition); c != nil && c.Status == metav1.ConditionFalse {
		markStalled(bi, catalogv1.PolicyNotReadyReason, fmt.Sprintf("ImagePolicy %q is not valid: %s", pol.Name, c.Message))
		return ctrl.Result{}, nil
	}
	interval := pol.Spec.RescanIntervalOrDefault()
	retryLater := ctrl.Result{RequeueAfter: wait.Jitter(interval, 0.1)}

	// The references.
	ref, err := imageReference(bi)
	if err != nil {
		markStalled(bi, catalogv1.InvalidSpecReason, err.Error())
		return ctrl.Result{}, nil
	}
	var upstream name.Reference
	if bi.Spec.Upstream != "" {
		if upstream, err = name.ParseReference(string(bi.Spec.Upstream)); err != nil {
			markStalled(bi, catalogv1.InvalidSpecReason, fmt.Sprintf("invalid upstream reference: %v", err))
			return ctrl.Result{}, nil
		}
	}

	// Registries outside the policy are never contacted.
	allowed, err := registry.AllowedBy(pol.Spec.AllowedRegistries, ref)
	if err != nil {
		markStalled(bi, catalogv1.PolicyNotReadyReason, fmt.Sprintf("ImagePolicy %q is not valid: %v", pol.Name, err))
		return ctrl.Result{}, nil
	}
	if !allowed {
		setCondition(bi, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.UnapprovedRegistryReason,
			fmt.Sprintf("Registry %s is not in the allowedRegistries of ImagePolicy %q", registry.RegistryOf(ref), pol.Name))
		markDenied(bi, catalogv1.UnapprovedRegistryReason, fmt.Sprintf("Registry %s is not allowed by ImagePolicy %q", registry.RegistryOf(ref), pol.Name))
		return ctrl.Result{}, nil
	}

	// Credentials.
	kc, err := keychainFor(ctx, r.APIReader, bi)
	var credErr *credentialError
	if errors.As(err, &credErr) {
		markStalled(bi, credErr.reason, credErr.message)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}

	// The digest: one manifest request when nothing changed.
	desc, err := r.Registry.Head(ctx, ref, kc)
	if err != nil {
		return r.registryFailure(bi, "image", err, retryLater)
	}
	digest := desc.Digest.String()
	if digest != bi.Status.ResolvedDigest || bi.Status.ObservedGeneration != bi.Generation || len(bi.Status.Platforms) == 0 {
		info, err := r.Registry.Inspect(ctx, ref.Context().Digest(digest), kc, platformStrings(bi.Spec.Platforms))
		if err != nil {
			return r.registryFailure(bi, "image", err, retryLater)
		}
		recordImage(bi, info, now)
	}

	var upstreamDigest string
	if upstream != nil {
		d, err := r.Registry.Head(ctx, upstream, kc)
		if err != nil {
			return r.registryFailure(bi, "upstream image", err, retryLater)
		}
		upstreamDigest = d.Digest.String()
	}
	bi.Status.UpstreamDigest = upstreamDigest
	if len(bi.Status.History) > 0 && bi.Status.History[0].UpstreamDigest == "" && upstreamDigest != "" {
		// The upstream was added after this digest was first seen.
		bi.Status.History[0].UpstreamDigest = upstreamDigest
	}
	baseDigest := bi.Status.BaseDigest
	if baseDigest == "" && upstream != nil && len(bi.Status.History) > 0 {
		baseDigest = bi.Status.History[0].UpstreamDigest
	}

	// Vulnerabilities.
	var vulns *policy.Vulnerabilities
	if r.Scanning == nil {
		removeCondition(bi, catalogv1.ScannedCondition)
	} else {
		firstSeen := firstSeenOf(&bi.Status, digest)
		out, err := r.scanDigest(ctx, bi, ref, digest, kc, now, progress)
		if err != nil {
			markRetrying(bi, out.reason, out.message)
			return ctrl.Result{}, err
		}
		if !out.ok {
			// The last verdict stays; Ready says why it is not current.
			if out.stalled {
				markStalled(bi, out.reason, out.message)
				return retryLater, nil
			}
			markNotReady(bi, out.reason, out.message)
			return ctrl.Result{RequeueAfter: wait.Jitter(out.retryAfter, 0.1)}, nil
		}
		vulns = &policy.Vulnerabilities{
			Findings:   out.findings,
			Policy:     pol.Spec.Vulnerabilities,
			Exceptions: pol.Spec.Exceptions,
			Image:      string(bi.Spec.Image),
			ApprovedAt: approvedAt(&bi.Status, digest),
			FirstSeen:  firstSeen,
		}
	}

	// The verdict.
	var created time.Time
	if bi.Status.ImageCreated != nil {
		created = bi.Status.ImageCreated.Time
	}
	var maxAge time.Duration
	if pol.Spec.MaxAge != nil {
		maxAge = pol.Spec.MaxAge.Duration
	}
	v := policy.Evaluate(policy.Input{
		Now:             now,
		ImageCreated:    created,
		MaxAge:          maxAge,
		UpstreamDigest:  upstreamDigest,
		BaseDigest:      baseDigest,
		Vulnerabilities: vulns,
	})
	setCondition(bi, catalogv1.ApprovedCondition, boolStatus(v.Approved), v.ApprovedReason, v.ApprovedMessage)
	setCondition(bi, catalogv1.StaleCondition, boolStatus(v.Stale), v.StaleReason, v.StaleMessage)
	if vulns != nil {
		bi.Status.Vulnerabilities, bi.Status.TopFindings = v.Summary, v.TopFindings
		r.Scanning.Metrics.SetVulnerabilities(bi.Namespace, bi.Name, v.Summary)
	}
	switch {
	case v.Approved:
		bi.Status.ApprovedDigest = digest
		if h := &bi.Status.History[0]; h.ApprovedAt == nil {
			h.ApprovedAt = &metav1.Time{Time: now}
		}
		if c := apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ScannedCondition); c != nil && c.Status != metav1.ConditionTrue {
			markNotReady(bi, c.Reason, c.Message)
		} else {
			markReady(bi, fmt.Sprintf("Approved digest %s", digest))
		}
	default:
		if bi.Status.ApprovedDigest == digest {
			// The approved digest itself lost its approval.
			bi.Status.ApprovedDigest = ""
		}
		markDenied(bi, v.ApprovedReason, v.ApprovedMessage)
	}

	next := wait.Jitter(interval, 0.1)
	if !v.NextDeadline.IsZero() {
		// Wake up just after the deadline rather than at it.
		if d := v.NextDeadline.Sub(now) + time.Second; d < next {
			next = d
		}
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// registryFailure reports a failed registry request. The last resolved and
// approved digests are kept.
func (r *BaseImageReconciler) registryFailure(bi *catalogv1.BaseImage, what string, err error, retryLater ctrl.Result) (ctrl.Result, error) {
	msg := fmt.Sprintf("Cannot read the %s: %v", what, err)
	switch registry.KindOf(err) {
	case registry.KindUnauthorized:
		markStalled(bi, catalogv1.AuthenticationFailedReason, msg)
		return retryLater, nil
	case registry.KindNotFound:
		markStalled(bi, catalogv1.ImageNotFoundReason, msg)
		return retryLater, nil
	case registry.KindInvalid:
		markStalled(bi, catalogv1.InvalidImageReason, msg)
		return retryLater, nil
	default:
		markRetrying(bi, catalogv1.RegistryUnavailableReason, msg)
		// Returning the error retries with exponential backoff. The
		// registry's errors carry no URLs or credentials.
		return ctrl.Result{}, err
	}
}

// imageReference parses spec.image, pinned to spec.digest when set.
func imageReference(bi *catalogv1.BaseImage) (name.Reference, error) {
	s := string(bi.Spec.Image)
	if bi.Spec.Digest != "" {
		s += "@" + string(bi.Spec.Digest)
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference: %w", err)
	}
	return ref, nil
}

func platformStrings(ps []catalogv1.Platform) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, string(p))
	}
	return out
}

// recordImage records a newly inspected digest and keeps the history: the
// newest digest first, at most catalogv1.MaxHistory entries.
func recordImage(bi *catalogv1.BaseImage, info *registry.ImageInfo, now time.Time) {
	st := &bi.Status
	st.Platforms = info.Platforms
	st.ImageCreated = nil
	if !info.Created.IsZero() {
		st.ImageCreated = &metav1.Time{Time: info.Created.UTC()}
	}
	st.BaseDigest = info.BaseDigest
	if info.Digest == st.ResolvedDigest && len(st.History) > 0 {
		return
	}

	ts := metav1.Time{Time: now}
	var rec catalogv1.DigestRecord
	kept := st.History[:0:0]
	for i, h := range st.History {
		if h.Digest == info.Digest {
			// The tag moved back to a digest seen before.
			rec = h
			continue
		}
		if i == 0 && h.SupersededAt == nil {
			h.SupersededAt = &ts
		}
		kept = append(kept, h)
	}
	if rec.Digest == "" {
		rec = catalogv1.DigestRecord{Digest: info.Digest, FirstSeen: ts, UpstreamDigest: st.UpstreamDigest}
	}
	rec.SupersededAt = nil
	st.History = append([]catalogv1.DigestRecord{rec}, kept...)
	if len(st.History) > catalogv1.MaxHistory {
		st.History = st.History[:catalogv1.MaxHistory]
	}
	st.ResolvedDigest = info.Digest
}

// recordTransitions emits an event for each change a user would notice.
func (r *BaseImageReconciler) recordTransitions(before, after *catalogv1.BaseImage) {
	if r.Recorder == nil {
		return
	}
	if before.Status.ResolvedDigest != after.Status.ResolvedDigest && after.Status.ResolvedDigest != "" {
		r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, "NewDigest", "Resolve",
			"Resolved %s to %s", after.Spec.Image, after.Status.ResolvedDigest)
	}
	for _, typ := range []string{catalogv1.ApprovedCondition, catalogv1.StaleCondition, catalogv1.StalledCondition, catalogv1.ReadyCondition} {
		if !conditionChanged(before.Status.Conditions, after.Status.Conditions, typ) {
			continue
		}
		c := apimeta.FindStatusCondition(after.Status.Conditions, typ)
		switch {
		case c == nil:
			continue
		case typ == catalogv1.ReadyCondition && c.Status == metav1.ConditionTrue:
			r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, c.Reason, "Ready", c.Message)
		case typ == catalogv1.ApprovedCondition && c.Status == metav1.ConditionTrue:
			r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, c.Reason, "Approve", c.Message)
		case typ == catalogv1.ApprovedCondition:
			r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, c.Reason, "Approve", c.Message)
		case typ == catalogv1.StaleCondition && c.Status == metav1.ConditionTrue:
			r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, c.Reason, "Evaluate", c.Message)
		case typ == catalogv1.StalledCondition && c.Status == metav1.ConditionTrue:
			r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, c.Reason, "Reconcile", c.Message)
		}
	}
}

// allBaseImages maps any event to every BaseImage.
func (r *BaseImageReconciler) allBaseImages(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.listRequests(ctx, "", nil, nil)
}

// baseImagesForPolicy maps an ImagePolicy to the BaseImages that use it.
func (r *BaseImageReconciler) baseImagesForPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRequests(ctx, o.GetNamespace(), client.MatchingFields{policyRefIndex: o.GetName()}, nil)
}

// baseImagesForSecret maps a Secret to the BaseImages that may read it:
// those naming it in pullSecretRef and those using a ServiceAccount.
func (r *BaseImageReconciler) baseImagesForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRequests(ctx, o.GetNamespace(), nil, func(b *catalogv1.BaseImage) bool {
		return (b.Spec.PullSecretRef != nil && b.Spec.PullSecretRef.Name == o.GetName()) ||
			(b.Spec.PullSecretRef == nil && b.Spec.ServiceAccountName != "")
	})
}

// baseImagesForServiceAccount maps a ServiceAccount to the BaseImages that
// use it.
func (r *BaseImageReconciler) baseImagesForServiceAccount(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRequests(ctx, o.GetNamespace(), client.MatchingFields{serviceAccountIndex: o.GetName()}, nil)
}

func (r *BaseImageReconciler) listRequests(ctx context.Context, ns string, fields client.MatchingFields, keep func(*catalogv1.BaseImage) bool) []reconcile.Request {
	var list catalogv1.BaseImageList
	opts := []client.ListOption{client.InNamespace(ns)}
	if fields != nil {
		opts = append(opts, fields)
	}
	if err := r.List(ctx, &list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot list BaseImages")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if keep != nil && !keep(&list.Items[i]) {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// policyChangedPredicate passes ImagePolicy events that can change a
// BaseImage's verdict: creation, deletion, a spec change, or a change of
// the policy's Ready status.
func policyChangedPredicate() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldP, ok1 := e.ObjectOld.(*catalogv1.ImagePolicy)
			newP, ok2 := e.ObjectNew.(*catalogv1.ImagePolicy)
			if !ok1 || !ok2 {
				return true
			}
			return oldP.Generation != newP.Generation ||
				conditionChanged(oldP.Status.Conditions, newP.Status.Conditions, catalogv1.ReadyCondition)
		},
	}
}
