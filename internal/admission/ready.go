package admission

import (
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/catalog"
)

// IndexSynced is a readiness check: it fails while a BaseImage of the
// manager's cache is missing from the index, so that a replica that just
// started receives no admission request before it knows the catalog (it
// would refuse every image in enforce mode).
func IndexSynced(c client.Reader, ix *catalog.Index) func(*http.Request) error {
	return func(req *http.Request) error {
		var list catalogv1.BaseImageList
		if err := c.List(req.Context(), &list); err != nil {
			return fmt.Errorf("listing BaseImages: %w", err)
		}
		known := map[types.NamespacedName]bool{}
		for _, e := range ix.Entries() {
			known[e.Name] = true
		}
		missing := 0
		for i := range list.Items {
			if !known[types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d BaseImages are not in the catalog index yet", missing, len(list.Items))
		}
		return nil
	}
}
