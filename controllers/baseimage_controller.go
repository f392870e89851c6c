package controllers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"sigs.k8s.io/controller-runtime/pkg/source"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/registry"
)

// Registry is what the BaseImage reconciler needs of a registry client.
type Registry interface {
	// Head resolves a tag or digest reference to its descriptor.
	Head(ctx context.Context, ref name.Reference, a registry.Access) (*v1.Descriptor, error)
	// Inspect reads the platforms, creation time and base annotations of a
	// digest.
	Inspect(ctx context.Context, ref name.Digest, a registry.Access, platforms []string) (*registry.ImageInfo, error)
	// Resolve reads the manifest a tag or digest reference points at and
	// inspects it, reusing the manifest it read: the first look at an
	// entry.
	Resolve(ctx context.Context, ref name.Reference, a registry.Access, platforms []string) (*registry.ImageInfo, error)
	// Transport is the polite transport to a registry reached with a, for
	// the scanner's layer downloads.
	Transport(a registry.Access) (http.RoundTripper, error)
	// Tags reads a repository's tags, page by page, at most max of them.
	Tags(ctx context.Context, repo name.Repository, a registry.Access, max int, visit func(tag string)) (int, bool, error)
}

// DefaultReconcileTimeout bounds one BaseImage reconcile, scans included.
const DefaultReconcileTimeout = 15 * time.Minute

// BaseImageReconciler resolves each BaseImage's digest, judges it against
// its ImagePolicy and reports the verdict in status conditions.
type BaseImageReconciler struct {
	client.Client

	// APIReader reads Secrets and ServiceAccounts without caching them, and
	// confirms that an ImagePolicy the cache lacks does not exist.
	APIReader client.Reader
	Registry  Registry
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	// Scanning, when set, judges entries on their vulnerabilities too.
	Scanning *Scanning

	// Verifier checks publishers' signatures for policies that ask for it.
	Verifier PublisherVerifier

	// PublicRoot is the trusted root of policies that name none; nil means
	// there is none, and such policies need trustedRoot.
	PublicRoot PublicTrustRoot

	// Signer signs and attests approved digests for policies that ask for
	// it; it needs Scanning for the report and SBOM it attests.
	Signer CatalogSigner

	// Webhooks delivers rebuild webhooks and notifications.
	Webhooks WebhookSender

	// Metrics records rebuilds, deliveries and time to patch; nil records
	// nothing.
	Metrics *metrics.Metrics

	// MaxConcurrentReconciles bounds how many BaseImages are reconciled at
	// once.
	MaxConcurrentReconciles int

	// ReconcileTimeout bounds one reconcile; default
	// DefaultReconcileTimeout.
	ReconcileTimeout time.Duration

	// keys holds the catalog keys parsed from their Secrets.
	keys keyCache
}

// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=baseimages,verbs=get;list;watch
// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=baseimages/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=imagepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets;serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=baseimages/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create

// SetupWithManager registers the reconciler and its watches. SetupIndexes
// must have been called first.
func (r *BaseImageReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.ReconcileTimeout <= 0 {
		r.ReconcileTimeout = DefaultReconcileTimeout
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
		Owns(&batchv1.Job{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.baseImagesForSecret)).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.baseImagesForConfigMap)).
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.baseImagesForServiceAccount),
			builder.WithPredicates(serviceAccountChangedPredicate())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

// Reconcile brings one BaseImage's status up to date. It reads like its
// table of contents: each step takes what the earlier ones observed and
// adds what it found; the conditions are computed once, at the end, and
// status is patched once (plus the "scan in progress" patch).
func (r *BaseImageReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var bi catalogv1.BaseImage
	if err := r.Get(ctx, req.NamespacedName, &bi); err != nil {
		if apierrors.IsNotFound(err) && r.Scanning != nil {
			r.Scanning.Metrics.ForgetBaseImage(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	timeout := r.ReconcileTimeout
	if timeout <= 0 {
		timeout = DefaultReconcileTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

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

	// Status times are stored to the second; so is now, so that an
	// unchanged observation compares equal.
	s := &scope{bi: &bi, now: r.Clock.Now().UTC().Truncate(time.Second), progress: progress, before: &before.Status}
	var result ctrl.Result
	var recErr error
	if bi.Spec.Suspend {
		markSuspended(&bi)
	} else {
		for _, step := range []func(context.Context, *scope){
			r.checkPolicy,
			r.resolve,
			r.readUpstream,
			r.verifyPublisher,
			r.scanResolved,
			r.judgeResolved,
			r.rejudgeApproved,
		} {
			if step(ctx, s); s.stop != nil {
				break
			}
		}
		r.record(s)
		if s.stop == nil {
			// Signing follows the verdict it attests, and rebuilds the
			// Stale condition.
			r.signApproved(ctx, s)
			s.readyAfterSigning()
			if s.retryErr == nil {
				r.triggerRebuild(ctx, s)
			}
		}
		if (s.stop == nil || s.stop.kind == denied) && s.retryErr == nil {
			// A refusal is a transition to tell too.
			r.notify(ctx, s)
		}
		result, recErr = s.result(s.verdict, s.approvedVerdict)
	}
	if apierrors.IsConflict(recErr) || apierrors.IsNotFound(recErr) {
		return conflictResult(ctx, recErr)
	}

	// A condition computed in several passes (Ready after signing) may have
	// been flipped and back: it changed only if its status differs from
	// what was stored.
	keepTransitionTimes(before.Status.Conditions, bi.Status.Conditions)

	// A reconcile that ends in a transient failure has not handled this
	// generation: the retry does the work again.
	if recErr == nil {
		bi.Status.ObservedGeneration = bi.Generation
		if v, ok := bi.Annotations[catalogv1.ReconcileRequestAnnotation]; ok {
			bi.Status.LastHandledReconcileAt = v
		}
	}
	if bi.Status.Consumers == nil {
		// Counted as none until the inventory finds some: written with the
		// first status, the counts need no write of their own (which would
		// race this reconcile's) while they stay zero.
		bi.Status.Consumers = &catalogv1.ConsumersStatus{}
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
	if !equality.Semantic.DeepEqual(before.Status, bi.Status) || s.revoked != "" {
		r.recordTransitions(before, &bi, s)
	}
	return result, recErr
}

// event records an event on the entry, when there is a recorder.
func (r *BaseImageReconciler) event(bi *catalogv1.BaseImage, typ, reason, action, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(bi, nil, typ, reason, action, "%s", msg)
	}
}

// markSuspended records that plinth leaves the entry alone until someone
// resumes it: Ready=False and Stalled=True with reason Suspended, so that
// kstatus reads it as Failed rather than in progress for ever, and every
// other condition and field as last observed.
func markSuspended(bi *catalogv1.BaseImage) {
	markStalled(bi, catalogv1.SuspendedReason, "The entry is suspended: its last verdict is kept and not updated")
}

// conflictResult handles a status patch refused because the object changed
// or went away meanwhile: a changed object is reconciled again shortly.
func conflictResult(ctx context.Context, err error) (ctrl.Result, error) {
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	}
	if errors.Is(err, errStaleCopy) {
		// The cache had not yet seen the last status write; it has a
		// moment later.
		ctrl.LoggerFrom(ctx).V(1).Info("BaseImage read from a stale cache, retrying")
		return ctrl.Result{RequeueAfter: wait.Jitter(100*time.Millisecond, 0.5)}, nil
	}
	ctrl.LoggerFrom(ctx).V(1).Info("BaseImage changed meanwhile, retrying")
	return ctrl.Result{RequeueAfter: wait.Jitter(time.Second, 0.5)}, nil
}

// jitter spreads requeues of many entries over 10% of the interval.
func jitter(d time.Duration) time.Duration { return wait.Jitter(d, 0.1) }
