package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/inventory"
)

func TestInventoryCollector(t *testing.T) {
	python := types.NamespacedName{Namespace: "platform", Name: "python"}
	golang := types.NamespacedName{Namespace: "platform", Name: "golang"}
	store := inventory.NewStore()
	entries := func() []types.NamespacedName { return []types.NamespacedName{python, golang} }
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewInventoryCollector(store.Summary, entries))

	// With nothing running, the cluster's classes and every entry are
	// reported at 0, and no namespace is.
	want := `
# HELP plinth_inventory_cluster_containers Containers of running Pods by the class of their base: approved, superseded (an older or unapproved digest of a catalog entry), unapproved (no catalog base), unknown (could not be read). Every class is reported, at 0 when no container has it.
# TYPE plinth_inventory_cluster_containers gauge
plinth_inventory_cluster_containers{class="approved"} 0
plinth_inventory_cluster_containers{class="superseded"} 0
plinth_inventory_cluster_containers{class="unapproved"} 0
plinth_inventory_cluster_containers{class="unknown"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "plinth_inventory_cluster_containers", "plinth_inventory_containers"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "plinth_baseimage_consumer_containers"); n != 4 {
		t.Errorf("%d consumer series with nothing running, want 4 (2 entries x approved, superseded)", n)
	}

	store.Set(types.NamespacedName{Namespace: "shop", Name: "web"}, []inventory.Container{
		{Name: "app", Class: catalog.Approved, Base: python},
		{Name: "old", Class: catalog.Superseded, Base: python},
		{Name: "sidecar", Class: catalog.Unapproved},
	})
	want = `
# HELP plinth_inventory_containers Containers of running Pods by namespace and class of their base. A namespace with no running container has no series.
# TYPE plinth_inventory_containers gauge
plinth_inventory_containers{class="approved",namespace="shop"} 1
plinth_inventory_containers{class="superseded",namespace="shop"} 1
plinth_inventory_containers{class="unapproved",namespace="shop"} 1
plinth_inventory_containers{class="unknown",namespace="shop"} 0
# HELP plinth_baseimage_consumer_containers Containers of running Pods built on each catalog entry, by class (approved or superseded). Every entry of the catalog is reported, at 0 when nothing runs on it.
# TYPE plinth_baseimage_consumer_containers gauge
plinth_baseimage_consumer_containers{base_name="golang",base_namespace="platform",class="approved"} 0
plinth_baseimage_consumer_containers{base_name="golang",base_namespace="platform",class="superseded"} 0
plinth_baseimage_consumer_containers{base_name="python",base_namespace="platform",class="approved"} 1
plinth_baseimage_consumer_containers{base_name="python",base_namespace="platform",class="superseded"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "plinth_inventory_containers", "plinth_baseimage_consumer_containers"); err != nil {
		t.Error(err)
	}

	// A deleted Pod's namespace goes with it.
	store.Delete(types.NamespacedName{Namespace: "shop", Name: "web"})
	if n := testutil.CollectAndCount(reg, "plinth_inventory_containers"); n != 0 {
		t.Errorf("%d namespace series after the last Pod went, want 0", n)
	}
}
