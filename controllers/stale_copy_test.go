package controllers

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

func TestAStaleCopyIsAConflictRetriedSoon(t *testing.T) {
	err := error(staleCopyError{apierrors.NewConflict(catalogv1.GroupVersion.WithResource("baseimages").GroupResource(), "x", errStaleCopy)})
	if !apierrors.IsConflict(err) || !errors.Is(err, errStaleCopy) {
		t.Fatalf("conflict %v, stale %v", apierrors.IsConflict(err), errors.Is(err, errStaleCopy))
	}
}
