package controllers

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Field indexes on BaseImages, so a change to a policy, Secret or
// ServiceAccount re-evaluates only the entries that use it.
const (
	policyRefIndex      = ".spec.policyRef.name"
	pullSecretRefIndex  = ".spec.pullSecretRef.name"
	serviceAccountIndex = ".spec.serviceAccountName"
)

// SetupIndexes registers the BaseImage field indexes with the manager's
// cache. Call it once before setting up the reconcilers.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	indexes := map[string]func(*catalogv1.BaseImage) string{
		policyRefIndex: func(b *catalogv1.BaseImage) string { return b.Spec.PolicyRef.Name },
		pullSecretRefIndex: func(b *catalogv1.BaseImage) string {
			if b.Spec.PullSecretRef == nil {
				return ""
			}
			return b.Spec.PullSecretRef.Name
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
	return nil
}
