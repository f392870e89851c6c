// Package metrics holds plinth's Prometheus collectors. Every name starts
// with plinth_; label sets stay bounded (no vulnerability ids as labels), and
// the series of a deleted BaseImage are removed.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Scan results, the values of plinth_scans_total's result label.
const (
	ScanSucceeded = "success"
	ScanFailed    = "failure"
)

// Metrics are the collectors the controllers update.
type Metrics struct {
	scans           *prometheus.CounterVec
	scanDuration    prometheus.Histogram
	vulnerabilities *prometheus.GaugeVec
	dbFailures      prometheus.Counter
	dbLastSuccess   prometheus.Gauge
}

// New creates the collectors and registers them, together with a gauge of
// the vulnerability DB's age read from dbUpdatedAt at scrape time (nil
// leaves that gauge out). The DB update series are fed by ObserveDBUpdate.
func New(reg prometheus.Registerer, dbUpdatedAt func() time.Time) *Metrics {
	m := &Metrics{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plinth_scans_total",
			Help: "Vulnerability scans of image digests, by result. Results served from the cache are not scans.",
		}, []string{"result"}),
		scanDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plinth_scan_duration_seconds",
			Help:    "Duration of vulnerability scans of image digests.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}),
		vulnerabilities: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plinth_baseimage_vulnerabilities",
			Help: "Vulnerabilities of each BaseImage's scanned digest, by severity.",
		}, []string{"namespace", "name", "severity"}),
		dbFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plinth_vulndb_update_failures_total",
			Help: "Failed attempts to check for or download a new vulnerability DB.",
		}),
		dbLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plinth_vulndb_last_success_timestamp_seconds",
			Help: "When an attempt to update the vulnerability DB last succeeded, in seconds since the epoch; 0 when none has since start.",
		}),
	}
	reg.MustRegister(m.scans, m.scanDuration, m.vulnerabilities, m.dbFailures, m.dbLastSuccess)
	if dbUpdatedAt != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plinth_vulndb_age_seconds",
			Help: "Age of the loaded vulnerability DB (time since it was built); -1 when none is loaded.",
		}, func() float64 {
			t := dbUpdatedAt()
			if t.IsZero() {
				return -1
			}
			return time.Since(t).Seconds()
		}))
	}
	return m
}

// ObserveScan records one scan.
func (m *Metrics) ObserveScan(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.scans.WithLabelValues(result).Inc()
	if result == ScanSucceeded {
		m.scanDuration.Observe(d.Seconds())
	}
}

// ObserveDBUpdate records one attempt to update the vulnerability DB,
// ended at at: a failure when err is not nil, a success otherwise (whether
// or not the DB changed). Wire it to the DB manager's OnUpdate.
func (m *Metrics) ObserveDBUpdate(err error, at time.Time) {
	if m == nil {
		return
	}
	if err != nil {
		m.dbFailures.Inc()
		return
	}
	m.dbLastSuccess.Set(float64(at.UnixNano()) / 1e9)
}

// SetVulnerabilities records a BaseImage's counts by severity.
func (m *Metrics) SetVulnerabilities(namespace, name string, s *catalogv1.VulnerabilitySummary) {
	if m == nil || s == nil {
		return
	}
	for _, sev := range catalogv1.Severities {
		m.vulnerabilities.WithLabelValues(namespace, name, string(sev)).Set(float64(s.Count(sev).Total))
	}
}

// ForgetBaseImage removes the series of a deleted BaseImage.
func (m *Metrics) ForgetBaseImage(namespace, name string) {
	if m == nil {
		return
	}
	m.vulnerabilities.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
}
