package controllers

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/inventory"
)

// Defaults of the InventoryReconciler's zero fields.
const (
	DefaultInventoryMatchTimeout = 30 * time.Second
	DefaultInventoryRetryUnknown = time.Minute
	DefaultInventoryCachedImages = 50000
	DefaultCatalogSettle         = time.Second
)

// InventoryReconciler keeps the inventory of what runs on the catalog: for
// every Pod, the class of the base of each of its containers (init,
// ephemeral and regular). It matches images with the shared catalog
// Matcher and remembers each verdict by image and digest, so that Pods that
// come and go with images already seen cost no registry read. When the
// catalog's digests change, every Pod is matched again; the Matcher keeps
// the images' manifests, so that costs no registry read either, except for
// the new catalog digests.
type InventoryReconciler struct {
	client.Client

	// Index is the catalog index the Matcher reads; its changes start a
	// new match of every Pod.
	Index *catalog.Index
	// Matcher classifies images.
	Matcher *catalog.Matcher
	// Store receives the verdicts.
	Store *inventory.Store

	// MatchTimeout bounds the matching of one Pod's images. Default
	// DefaultInventoryMatchTimeout.
	MatchTimeout time.Duration
	// RetryUnknownAfter is when a Pod with a container of Unknown class is
	// matched again. Default DefaultInventoryRetryUnknown.
	RetryUnknownAfter time.Duration
	// MaxCachedImages bounds the verdicts kept by image and digest.
	// Default DefaultInventoryCachedImages.
	MaxCachedImages int
	// CatalogSettle is how long a change of the catalog waits for others
	// before every Pod is matched again. Default DefaultCatalogSettle.
	CatalogSettle time.Duration
	// MaxConcurrentReconciles bounds how many Pods are matched at once.
	MaxConcurrentReconciles int

	results *verdictCache
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// SetupWithManager registers the reconciler, and a runnable that matches
// every Pod again when the catalog changes. The manager's cache must strip
// Pods as CacheByObject says.
func (r *InventoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.MatchTimeout = positive(r.MatchTimeout, DefaultInventoryMatchTimeout)
	r.RetryUnknownAfter = positive(r.RetryUnknownAfter, DefaultInventoryRetryUnknown)
	r.CatalogSettle = positive(r.CatalogSettle, DefaultCatalogSettle)
	if r.MaxCachedImages <= 0 {
		r.MaxCachedImages = DefaultInventoryCachedImages
	}
	if r.MaxConcurrentReconciles <= 0 {
		r.MaxConcurrentReconciles = 4
	}
	r.results = newVerdictCache(r.MaxCachedImages)

	rematch := make(chan event.GenericEvent)
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		r.watchCatalog(ctx, rematch)
		return nil
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("inventory").
		For(&corev1.Pod{}, builder.WithPredicates(podImagesChanged())).
		WatchesRawSource(source.Channel(rematch, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

func positive(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Reconcile matches the images of one Pod and records the verdicts.
func (r *InventoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pod corev1.Pod
	if err := r.Get(ctx, req.NamespacedName, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			r.Store.Delete(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	// A Pod that has finished runs nothing.
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		r.Store.Delete(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	ctx, cancel := context.WithTimeout(ctx, r.MatchTimeout)
	defer cancel()
	gen := r.Index.Generation()
	images := podImages(&pod)
	out := make([]inventory.Container, 0, len(images))
	retry := false
	for _, img := range images {
		v, again := r.classify(ctx, gen, img.image, img.digest)
		retry = retry || again
		out = append(out, inventory.Container{Name: img.name, Class: v.class, Base: v.base})
	}
	if len(out) == 0 {
		// Nothing of it runs yet.
		r.Store.Delete(req.NamespacedName)
	} else if r.Store.Set(req.NamespacedName, out) {
		ctrl.LoggerFrom(ctx).V(1).Info("Inventory updated", "containers", len(out))
	}
	if retry {
		return ctrl.Result{RequeueAfter: jitter(r.RetryUnknownAfter)}, nil
	}
	return ctrl.Result{}, nil
}

// verdict is what the inventory keeps of a Matcher result.
type verdict struct {
	class catalog.Class
	base  types.NamespacedName
}

// classify returns the verdict on image, whose digest (from the container
// status) may be empty, and whether it should be tried again later. A
// verdict on a known digest is kept by image and digest until the catalog
// changes; without a digest, the Matcher resolves the tag (and keeps the
// tag's digest for a while).
func (r *InventoryReconciler) classify(ctx context.Context, gen uint64, image, digest string) (verdict, bool) {
	ref, err := catalog.ParseImage(image)
	if err != nil {
		// A reference the runtime could not pull either; nothing to retry.
		return verdict{class: catalog.Unknown}, false
	}
	if _, pinned := ref.(name.Digest); pinned {
		// The spec's digest is what was asked for; a runtime may report
		// another (a platform manifest of that index).
		digest = ""
	}
	key := ""
	if _, pinned := ref.(name.Digest); pinned || digest != "" {
		key = image + "@" + digest
		if v, ok := r.results.get(key, gen); ok {
			return v, false
		}
	}
	res, err := r.Matcher.MatchReference(ctx, ref, digest)
	if err != nil {
		return verdict{class: catalog.Unknown}, false
	}
	v := verdict{class: res.Class, base: res.BaseImage}
	if res.Class == catalog.Unknown {
		ctrl.LoggerFrom(ctx).V(1).Info("Cannot classify image", "image", image, "reason", res.Reason)
		return v, true
	}
	if key != "" {
		r.results.put(key, gen, v)
	}
	return v, false
}

// watchCatalog sends an event for every Pod of the inventory when the
// catalog's digests change, once the changes settle.
func (r *InventoryReconciler) watchCatalog(ctx context.Context, events chan<- event.GenericEvent) {
	changed := r.Index.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		// Changes from now on start another round.
		changed = r.Index.Changed()
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.CatalogSettle):
		}
		for _, p := range r.Store.Pods() {
			ev := event.GenericEvent{Object: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}}}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}
}

// podImagesChanged passes Pod events that change what the inventory
// reads: creations, deletions, and updates of images, image ids or phase.
func podImagesChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Pod)
			n, ok2 := e.ObjectNew.(*corev1.Pod)
			if !ok1 || !ok2 {
				return true
			}
			return o.Status.Phase != n.Status.Phase || !sameImages(podImages(o), podImages(n))
		},
	}
}
