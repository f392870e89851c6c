package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Field indexes, so a change to a policy, Secret or ServiceAccount
// re-evaluates only the entries that use it.
const (
	policyRefIndex      = ".spec.policyRef.name"
	pullSecretRefIndex  = ".spec.pullSecretRef.name"
	certSecretRefIndex  = ".spec.certSecretRef.name"
	serviceAccountIndex = ".spec.serviceAccountName"
	// imagePullSecretIndex indexes ServiceAccounts by the Secrets their
	// imagePullSecrets name.
	imagePullSecretIndex = ".imagePullSecrets.name"
)

// SetupIndexes registers the field indexes with the manager's cache. Call
// it once before setting up the reconcilers.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	indexes := map[string]func(*catalogv1.BaseImage) string{
		policyRefIndex: func(b *catalogv1.BaseImage) string { return b.Spec.PolicyRef.Name },
		pullSecretRefIndex: func(b *catalogv1.BaseImage) string {
			if b.Spec.PullSecretRef == nil {
				return ""
			}
			return b.Spec.PullSecretRef.Name
		},
		certSecretRefIndex: func(b *catalogv1.BaseImage) string {
			if b.Spec.CertSecretRef == nil {
				return ""
			}
			return b.Spec.CertSecretRef.Name
		},
		serviceAccountIndex: func(b *catalogv1.BaseImage) string { return b.Spec.ServiceAccountName },
	}
	for field, value := range indexes {
		if err := indexer.IndexField(ctx, &catalogv1.BaseImage{}, field, func(o client.Object) []string {
			if v := value(o.(*catalogv1.BaseImage)); v != "" {
				return []string{v}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return indexer.IndexField(ctx, &corev1.ServiceAccount{}, imagePullSecretIndex, func(o client.Object) []string {
		sa := o.(*corev1.ServiceAccount)
		names := make([]string, 0, len(sa.ImagePullSecrets))
		for _, s := range sa.ImagePullSecrets {
			names = append(names, s.Name)
		}
		return names
	})
}
