package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// allBaseImages maps any event to every BaseImage.
func (r *BaseImageReconciler) allBaseImages(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.listRequests(ctx, "", nil, nil)
}

// baseImagesForPolicy maps an ImagePolicy to the BaseImages that use it.
func (r *BaseImageReconciler) baseImagesForPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listRequests(ctx, o.GetNamespace(), client.MatchingFields{policyRefIndex: o.GetName()}, nil)
}

// baseImagesForSecret maps a Secret to the BaseImages that read it: those
// naming it in pullSecretRef or certSecretRef, and those whose
// ServiceAccount lists it in imagePullSecrets. Every lookup is an index.
func (r *BaseImageReconciler) baseImagesForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	ns, name := o.GetNamespace(), o.GetName()
	reqs := r.listRequests(ctx, ns, client.MatchingFields{pullSecretRefIndex: name}, nil)
	reqs = append(reqs, r.listRequests(ctx, ns, client.MatchingFields{certSecretRefIndex: name}, nil)...)
	var sas corev1.ServiceAccountList
	if err := r.List(ctx, &sas, client.InNamespace(ns), client.MatchingFields{imagePullSecretIndex: name}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot list ServiceAccounts")
		return reqs
	}
	for i := range sas.Items {
		reqs = append(reqs, r.listRequests(ctx, ns, client.MatchingFields{serviceAccountIndex: sas.Items[i].Name},
			func(b *catalogv1.BaseImage) bool { return b.Spec.PullSecretRef == nil })...)
	}
	// Keys and trusted roots of the namespace's policies.
	var pols catalogv1.ImagePolicyList
	if err := r.List(ctx, &pols, client.InNamespace(ns)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot list ImagePolicies")
		return reqs
	}
	for i := range pols.Items {
		if policyNamesSecret(&pols.Items[i], name) {
			reqs = append(reqs, r.listRequests(ctx, ns, client.MatchingFields{policyRefIndex: pols.Items[i].Name}, nil)...)
		}
	}
	return reqs
}

// baseImagesForConfigMap maps a ConfigMap to the BaseImages whose policy
// reads its trusted root from it.
func (r *BaseImageReconciler) baseImagesForConfigMap(ctx context.Context, o client.Object) []reconcile.Request {
	var pols catalogv1.ImagePolicyList
	if err := r.List(ctx, &pols, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot list ImagePolicies")
		return nil
	}
	var reqs []reconcile.Request
	for i := range pols.Items {
		v := pols.Items[i].Spec.Verification
		if v != nil && v.TrustedRoot != nil && v.TrustedRoot.ConfigMapRef != nil && v.TrustedRoot.ConfigMapRef.Name == o.GetName() {
			reqs = append(reqs, r.listRequests(ctx, o.GetNamespace(), client.MatchingFields{policyRefIndex: pols.Items[i].Name}, nil)...)
		}
	}
	return reqs
}

// policyNamesSecret tells whether a policy's verification or signing reads
// the Secret.
func policyNamesSecret(p *catalogv1.ImagePolicy, secret string) bool {
	if sp := p.Spec.Signing; sp != nil && (sp.KeySecretRef.Name == secret || sp.PushSecretRef != nil && sp.PushSecretRef.Name == secret) {
		return true
	}
	v := p.Spec.Verification
	if v == nil {
		return false
	}
	for _, k := range v.Keys {
		if k.SecretRef != nil && k.SecretRef.Name == secret {
			return true
		}
	}
	return v.TrustedRoot != nil && v.TrustedRoot.SecretRef != nil && v.TrustedRoot.SecretRef.Name == secret
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

// serviceAccountChangedPredicate passes ServiceAccount events that can
// change a BaseImage's credentials: creation, deletion, and a change of
// imagePullSecrets (not the token churn of other fields).
func serviceAccountChangedPredicate() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldSA, ok1 := e.ObjectOld.(*corev1.ServiceAccount)
			newSA, ok2 := e.ObjectNew.(*corev1.ServiceAccount)
			if !ok1 || !ok2 {
				return true
			}
			return !equality.Semantic.DeepEqual(oldSA.ImagePullSecrets, newSA.ImagePullSecrets)
		},
	}
}
