package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plinth-dev/plinth/internal/inventory"
)

var (
	inventoryClusterDesc = prometheus.NewDesc("plinth_inventory_cluster_containers",
		"Containers of running Pods by the class of their base: approved, superseded (an older or unapproved digest of a catalog entry), unapproved (no catalog base), unknown (could not be read). Every class is reported, at 0 when no container has it.",
		[]string{"class"}, nil)
	inventoryNamespaceDesc = prometheus.NewDesc("plinth_inventory_containers",
		"Containers of running Pods by namespace and class of their base. A namespace with no running container has no series.",
		[]string{"namespace", "class"}, nil)
	consumerContainersDesc = prometheus.NewDesc("plinth_baseimage_consumer_containers",
		"Containers of running Pods built on each catalog entry, by class (approved or superseded). Every entry of the catalog is reported, at 0 when nothing runs on it.",
		[]string{"base_namespace", "base_name", "class"}, nil)
)

// inventoryCollector reports the inventory of running containers.
type inventoryCollector struct {
	summary func() inventory.Summary
	entries func() []types.NamespacedName
}

// NewInventoryCollector returns a collector of the containers that run on
// the catalog: by class for the whole cluster, by namespace and class, and
// by catalog entry and class. summary reads the inventory at each scrape;
// entries lists the catalog's entries, each reported even with no
// consumers.
func NewInventoryCollector(summary func() inventory.Summary, entries func() []types.NamespacedName) prometheus.Collector {
	return &inventoryCollector{summary: summary, entries: entries}
}

// Describe sends the descriptors of every series the collector reports.
func (c *inventoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inventoryClusterDesc
	ch <- inventoryNamespaceDesc
	ch <- consumerContainersDesc
}

// Collect reads the inventory and sends its series.
func (c *inventoryCollector) Collect(ch chan<- prometheus.Metric) {
	sum := c.summary()
	for _, class := range inventory.Classes {
		ch <- prometheus.MustNewConstMetric(inventoryClusterDesc, prometheus.GaugeValue,
			float64(sum.Cluster[class]), inventory.Label(class))
	}
	for ns, counts := range sum.Namespaces {
		for _, class := range inventory.Classes {
			ch <- prometheus.MustNewConstMetric(inventoryNamespaceDesc, prometheus.GaugeValue,
				float64(counts[class]), ns, inventory.Label(class))
		}
	}
	// Entries of the catalog, and any base still counted while the
	// catalog forgets it.
	bases := map[types.NamespacedName]bool{}
	for _, n := range c.entries() {
		bases[n] = true
	}
	for n := range sum.Bases {
		bases[n] = true
	}
	for n := range bases {
		var byClass inventory.ClassCounts
		if b := sum.Bases[n]; b != nil {
			byClass = b.ByClass
		}
		for _, class := range inventory.Classes[:2] { // approved, superseded
			ch <- prometheus.MustNewConstMetric(consumerContainersDesc, prometheus.GaugeValue,
				float64(byClass[class]), n.Namespace, n.Name, inventory.Label(class))
		}
	}
}
