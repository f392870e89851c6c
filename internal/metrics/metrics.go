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

// Rebuild outcomes, the values of plinth_rebuilds_total's outcome label.
const (
	// RebuildTriggered counts rebuilds started: a Job created or a webhook
	// delivered.
	RebuildTriggered = "triggered"
	// RebuildSucceeded counts rebuild Jobs that completed.
	RebuildSucceeded = "succeeded"
	// RebuildFailed counts rebuild Jobs that failed.
	RebuildFailed = "failed"
	// RebuildRefused counts rebuild Jobs the API server refused to create.
	RebuildRefused = "refused"
)

// Webhook delivery kinds and outcomes, the values of
// plinth_webhook_deliveries_total's kind and outcome labels.
const (
	// DeliveryRebuild is a signed rebuild webhook.
	DeliveryRebuild = "rebuild"
	// DeliveryNotification is a notification webhook.
	DeliveryNotification = "notification"
	// DeliverySucceeded is a delivery the receiver accepted (2xx).
	DeliverySucceeded = "success"
	// DeliveryFailed is a delivery that failed: no connection, a timeout
	// or a non-2xx answer.
	DeliveryFailed = "failure"
)

// patchBuckets span remediation times from an hour to about three months:
// 1h, 2h, 4h, ... 2048h (85 days).
var patchBuckets = prometheus.ExponentialBuckets(3600, 2, 12)

// Metrics are the collectors the controllers update.
type Metrics struct {
	scans           *prometheus.CounterVec
	scanDuration    prometheus.Histogram
	vulnerabilities *prometheus.GaugeVec
	dbFailures      prometheus.Counter
	dbLastSuccess   prometheus.Gauge
	timeToPatch     prometheus.Histogram
	timeToFix       prometheus.Histogram
	rebuilds        *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
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
		timeToPatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plinth_time_to_patch_seconds",
			Help:    "Time from a BaseImage turning Stale to the approval of a new digest.",
			Buckets: patchBuckets,
		}),
		timeToFix: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plinth_vulnerability_time_to_fix_seconds",
			Help:    "Time from the first detection of a blocking vulnerability in a BaseImage to the approval of a digest without it.",
			Buckets: patchBuckets,
		}),
		rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plinth_rebuilds_total",
			Help: "Rebuilds of stale BaseImages, by outcome: triggered, succeeded, failed, refused (the API server refused the Job).",
		}, []string{"outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plinth_webhook_deliveries_total",
			Help: "Webhook deliveries, by kind (rebuild, notification) and outcome (success, failure).",
		}, []string{"kind", "outcome"}),
	}
	// Every outcome exists from the start, so that rate() and increase()
	// see the first event.
	for _, o := range []string{RebuildTriggered, RebuildSucceeded, RebuildFailed, RebuildRefused} {
		m.rebuilds.WithLabelValues(o).Add(0)
	}
	for _, k := range []string{DeliveryRebuild, DeliveryNotification} {
		for _, o := range []string{DeliverySucceeded, DeliveryFailed} {
			m.deliveries.WithLabelValues(k, o).Add(0)
		}
	}
	reg.MustRegister(m.scans, m.scanDuration, m.vulnerabilities, m.dbFailures, m.dbLastSuccess,
		m.timeToPatch, m.timeToFix, m.rebuilds, m.deliveries)
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

// ObserveTimeToPatch records how long a BaseImage was Stale before a new
// digest was approved.
func (m *Metrics) ObserveTimeToPatch(staleFor time.Duration) {
	if m == nil {
		return
	}
	m.timeToPatch.Observe(staleFor.Seconds())
}

// ObserveCVETimeToFix records how long a blocking vulnerability stayed
// open: from its first detection in a BaseImage to the approval of a digest
// without it.
func (m *Metrics) ObserveCVETimeToFix(open time.Duration) {
	if m == nil {
		return
	}
	m.timeToFix.Observe(open.Seconds())
}

// ObserveRebuild counts one rebuild event; outcome is one of
// RebuildTriggered, RebuildSucceeded, RebuildFailed and RebuildRefused.
func (m *Metrics) ObserveRebuild(outcome string) {
	if m == nil {
		return
	}
	m.rebuilds.WithLabelValues(outcome).Inc()
}

// ObserveDelivery counts one webhook delivery; kind is DeliveryRebuild or
// DeliveryNotification, outcome DeliverySucceeded or DeliveryFailed.
func (m *Metrics) ObserveDelivery(kind, outcome string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(kind, outcome).Inc()
}
