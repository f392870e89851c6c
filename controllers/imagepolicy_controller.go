package controllers

import (
	"context"
	"fmt"
	"path"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
}

// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=imagepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=catalog.plinth.dev,resources=imagepolicies/status,verbs=get;update;patch

// SetupWithManager registers the reconciler.
func (r *ImagePolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&catalogv1.ImagePolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
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

	if equality.Semantic.DeepEqual(before.Status, pol.Status) {
		return ctrl.Result{}, nil
	}
	if err := r.Status().Patch(ctx, &pol, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// validatePolicy checks what the API server's schema cannot: that every
// allowedRegistries entry is a well-formed glob.
func validatePolicy(spec *catalogv1.ImagePolicySpec) error {
	for i, p := range spec.AllowedRegistries {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("allowedRegistries[%d] %q is not a valid glob pattern", i, p)
		}
	}
	return nil
}
