package metrics

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Catalog states, the values of plinth_catalog_entries' state label.
const (
	// StateApproved is an entry whose resolved digest is approved and that
	// is not stale.
	StateApproved = "approved"
	// StateStale is an approved entry that is due for a rebuild.
	StateStale = "stale"
	// StateNotApproved is an entry whose resolved digest the policy refused.
	StateNotApproved = "not_approved"
	// StateUnknown is an entry without a verdict yet.
	StateUnknown = "unknown"
)

// catalogStates lists every state, in the order they are reported.
var catalogStates = []string{StateApproved, StateStale, StateNotApproved, StateUnknown}

// catalogListTimeout bounds the read of the catalog at each scrape.
const catalogListTimeout = 10 * time.Second

var (
	catalogEntriesDesc = prometheus.NewDesc("plinth_catalog_entries",
		"BaseImages by namespace and state: approved, stale (approved but due for a rebuild), not_approved, unknown (no verdict yet). Suspended entries count by the verdict they keep.",
		[]string{"namespace", "state"}, nil)
	imageAgeDesc = prometheus.NewDesc("plinth_baseimage_age_seconds",
		"Age of each BaseImage's resolved image: now minus the creation time in its configuration. No series when the image records none.",
		[]string{"namespace", "name"}, nil)
	findingsDesc = prometheus.NewDesc("plinth_baseimage_findings",
		"Open vulnerability findings of each BaseImage's scanned digest, by severity and whether a fixed version exists.",
		[]string{"namespace", "name", "severity", "fixable"}, nil)
	deadlinesPassedDesc = prometheus.NewDesc("plinth_baseimage_deadlines_passed",
		"Findings of each scanned BaseImage whose remediation deadline has passed, among the at most 20 listed in status.topFindings (blocking findings first).",
		[]string{"namespace", "name"}, nil)
	catalogDeadlinesPassedDesc = prometheus.NewDesc("plinth_catalog_deadlines_passed",
		"BaseImages per namespace with at least one finding past its remediation deadline.",
		[]string{"namespace"}, nil)
)

// catalogCollector reports the state of the catalog, read from the
// manager's cache at each scrape.
type catalogCollector struct {
	reader client.Reader
	now    func() time.Time
}

// NewCatalogCollector returns a collector of the catalog's state: entries by
// state, image ages, open findings and passed remediation deadlines. It
// lists BaseImages from r at every scrape; with the manager's client that
// is a read of the informer cache, which holds only the watched namespaces.
// now is the clock ages and deadlines are measured against (time.Now when
// nil).
//
// When the list fails, the scrape goes on without the catalog's series and
// the error is logged.
func NewCatalogCollector(r client.Reader, now func() time.Time) prometheus.Collector {
	if now == nil {
		now = time.Now
	}
	return &catalogCollector{reader: r, now: now}
}

// Describe sends the descriptors of every series the collector reports.
func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{catalogEntriesDesc, imageAgeDesc, findingsDesc,
		deadlinesPassedDesc, catalogDeadlinesPassedDesc} {
		ch <- d
	}
}

// Collect lists the BaseImages and sends their series.
func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), catalogListTimeout)
	defer cancel()
	var list catalogv1.BaseImageList
	if err := c.reader.List(ctx, &list); err != nil {
		logf.Log.WithName("metrics").Error(err, "Cannot read the catalog for metrics")
		return
	}
	now := c.now()
	type namespaceTotals struct {
		states  map[string]int
		overdue int
	}
	byNamespace := map[string]*namespaceTotals{}
	for i := range list.Items {
		bi := &list.Items[i]
		ns := byNamespace[bi.Namespace]
		if ns == nil {
			ns = &namespaceTotals{states: map[string]int{}}
			byNamespace[bi.Namespace] = ns
		}
		ns.states[catalogState(bi)]++

		st := &bi.Status
		if st.ImageCreated != nil {
			ch <- prometheus.MustNewConstMetric(imageAgeDesc, prometheus.GaugeValue,
				now.Sub(st.ImageCreated.Time).Seconds(), bi.Namespace, bi.Name)
		}
		if st.ScannedDigest == "" {
			continue
		}
		if v := st.Vulnerabilities; v != nil {
			for _, sev := range catalogv1.Severities {
				n := v.Count(sev)
				ch <- prometheus.MustNewConstMetric(findingsDesc, prometheus.GaugeValue,
					float64(n.Fixable), bi.Namespace, bi.Name, string(sev), "true")
				ch <- prometheus.MustNewConstMetric(findingsDesc, prometheus.GaugeValue,
					float64(max(n.Total-n.Fixable, 0)), bi.Namespace, bi.Name, string(sev), "false")
			}
		}
		passed := deadlinesPassed(st.TopFindings, now)
		if passed > 0 {
			ns.overdue++
		}
		ch <- prometheus.MustNewConstMetric(deadlinesPassedDesc, prometheus.GaugeValue,
			float64(passed), bi.Namespace, bi.Name)
	}

	namespaces := make([]string, 0, len(byNamespace))
	for ns := range byNamespace {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	for _, name := range namespaces {
		ns := byNamespace[name]
		// Every state of a namespace with entries is reported, zeros
		// included, so that a graph shows a drop to zero rather than a gap.
		for _, s := range catalogStates {
			ch <- prometheus.MustNewConstMetric(catalogEntriesDesc, prometheus.GaugeValue,
				float64(ns.states[s]), name, s)
		}
		ch <- prometheus.MustNewConstMetric(catalogDeadlinesPassedDesc, prometheus.GaugeValue,
			float64(ns.overdue), name)
	}
}

// catalogState returns the state a BaseImage is counted in by
// plinth_catalog_entries: StateApproved when Approved is True and Stale is
// not, StateStale when both are True, StateNotApproved when Approved is
// False, and StateUnknown when Approved is Unknown or absent. A suspended
// entry keeps its last verdict and counts by it.
func catalogState(bi *catalogv1.BaseImage) string {
	approved := meta.FindStatusCondition(bi.Status.Conditions, catalogv1.ApprovedCondition)
	switch {
	case approved == nil:
		return StateUnknown
	case approved.Status == metav1.ConditionFalse:
		return StateNotApproved
	case approved.Status != metav1.ConditionTrue:
		return StateUnknown
	case meta.IsStatusConditionTrue(bi.Status.Conditions, catalogv1.StaleCondition):
		return StateStale
	default:
		return StateApproved
	}
}

// deadlinesPassed counts the findings whose remediation deadline is before
// now.
func deadlinesPassed(findings []catalogv1.Finding, now time.Time) int {
	n := 0
	for _, f := range findings {
		if f.Deadline != nil && f.Deadline.Time.Before(now) {
			n++
		}
	}
	return n
}
