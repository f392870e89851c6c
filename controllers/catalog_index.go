package controllers

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/catalog"
)

// CatalogIndexReconciler keeps the in-memory catalog index, which the
// inventory and the admission webhook match images against, in step with
// the BaseImages: their approved, resolved and past digests.
type CatalogIndexReconciler struct {
	client.Client
	Index *catalog.Index
}

// SetupWithManager registers the reconciler. It reacts to status changes
// too, since the digests live in status. It runs on every replica, leader
// or not: each replica answers admission requests from its own index.
func (r *CatalogIndexReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("catalogindex").
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		For(&catalogv1.BaseImage{}, builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Complete(r)
}

// Reconcile copies one BaseImage's digests into the index, or removes it.
func (r *CatalogIndexReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var bi catalogv1.BaseImage
	if err := r.Get(ctx, req.NamespacedName, &bi); err != nil {
		if apierrors.IsNotFound(err) {
			r.Index.Delete(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !bi.DeletionTimestamp.IsZero() {
		r.Index.Delete(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	r.Index.Upsert(&bi)
	return ctrl.Result{}, nil
}
