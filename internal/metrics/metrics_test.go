package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

func TestSeriesFollowTheBaseImages(t *testing.T) {
	reg := prometheus.NewRegistry()
	updated := time.Now().Add(-time.Hour)
	m := New(reg, func() time.Time { return updated })

	s := &catalogv1.VulnerabilitySummary{}
	s.Critical.Total, s.High.Total = 2, 5
	m.SetVulnerabilities("team-a", "python", s)
	m.SetVulnerabilities("team-a", "debian", &catalogv1.VulnerabilitySummary{})
	m.ObserveScan(ScanSucceeded, 2*time.Second)
	m.ObserveScan(ScanFailed, 0)

	want := `
# HELP plinth_baseimage_vulnerabilities Vulnerabilities of each BaseImage's scanned digest, by severity.
# TYPE plinth_baseimage_vulnerabilities gauge
plinth_baseimage_vulnerabilities{name="debian",namespace="team-a",severity="CRITICAL"} 0
plinth_baseimage_vulnerabilities{name="debian",namespace="team-a",severity="HIGH"} 0
plinth_baseimage_vulnerabilities{name="debian",namespace="team-a",severity="LOW"} 0
plinth_baseimage_vulnerabilities{name="debian",namespace="team-a",severity="MEDIUM"} 0
plinth_baseimage_vulnerabilities{name="debian",namespace="team-a",severity="UNKNOWN"} 0
plinth_baseimage_vulnerabilities{name="python",namespace="team-a",severity="CRITICAL"} 2
plinth_baseimage_vulnerabilities{name="python",namespace="team-a",severity="HIGH"} 5
plinth_baseimage_vulnerabilities{name="python",namespace="team-a",severity="LOW"} 0
plinth_baseimage_vulnerabilities{name="python",namespace="team-a",severity="MEDIUM"} 0
plinth_baseimage_vulnerabilities{name="python",namespace="team-a",severity="UNKNOWN"} 0
# HELP plinth_scans_total Vulnerability scans of image digests, by result. Results served from the cache are not scans.
# TYPE plinth_scans_total counter
plinth_scans_total{result="failure"} 1
plinth_scans_total{result="success"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "plinth_baseimage_vulnerabilities", "plinth_scans_total"); err != nil {
		t.Fatal(err)
	}

	m.ForgetBaseImage("team-a", "python")
	if n := testutil.CollectAndCount(m.vulnerabilities); n != 5 {
		t.Errorf("%d series after deleting python, want the 5 of debian", n)
	}
	if n := testutil.CollectAndCount(m.scanDuration); n != 1 {
		t.Errorf("scan duration series = %d", n)
	}
	age, err := testutil.GatherAndCount(reg, "plinth_vulndb_age_seconds")
	if err != nil || age != 1 {
		t.Fatalf("vulndb age series = %d, %v", age, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "plinth_vulndb_age_seconds" {
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v < 3599 || v > 3700 {
				t.Errorf("vulndb age = %v, want about 3600", v)
			}
		}
	}
}

func TestForgetBaseImageRemovesItsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, nil)
	s := &catalogv1.VulnerabilitySummary{}
	s.High.Total = 3
	m.SetVulnerabilities("team-a", "python", s)
	m.SetVulnerabilities("team-b", "python", s)
	m.SetVulnerabilities("team-a", "python-slim", s)

	m.ForgetBaseImage("team-a", "python")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "plinth_baseimage_vulnerabilities" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			left[labels["namespace"]+"/"+labels["name"]]++
		}
	}
	n := len(catalogv1.Severities)
	if left["team-a/python"] != 0 || left["team-b/python"] != n || left["team-a/python-slim"] != n {
		t.Errorf("series left by BaseImage: %v; want none of team-a/python and %d of each other", left, n)
	}
	// Forgetting an unknown BaseImage, or twice, is harmless.
	m.ForgetBaseImage("team-a", "python")
	m.ForgetBaseImage("team-c", "none")
	var nilMetrics *Metrics
	nilMetrics.ForgetBaseImage("team-a", "python")
}

func TestDBUpdateSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, func() time.Time { return time.Time{} })
	at := time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)
	m.ObserveDBUpdate(errors.New("mirror down"), at)
	m.ObserveDBUpdate(errors.New("mirror down"), at.Add(time.Hour))
	m.ObserveDBUpdate(nil, at.Add(2*time.Hour))
	m.ObserveDBUpdate(errors.New("mirror down"), at.Add(3*time.Hour))

	want := fmt.Sprintf(`
# HELP plinth_vulndb_last_success_timestamp_seconds When an attempt to update the vulnerability DB last succeeded, in seconds since the epoch; 0 when none has since start.
# TYPE plinth_vulndb_last_success_timestamp_seconds gauge
plinth_vulndb_last_success_timestamp_seconds %d
# HELP plinth_vulndb_update_failures_total Failed attempts to check for or download a new vulnerability DB.
# TYPE plinth_vulndb_update_failures_total counter
plinth_vulndb_update_failures_total 3
# HELP plinth_vulndb_age_seconds Age of the loaded vulnerability DB (time since it was built); -1 when none is loaded.
# TYPE plinth_vulndb_age_seconds gauge
plinth_vulndb_age_seconds -1
`, at.Add(2*time.Hour).Unix())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"plinth_vulndb_last_success_timestamp_seconds", "plinth_vulndb_update_failures_total", "plinth_vulndb_age_seconds"); err != nil {
		t.Fatal(err)
	}
}

func TestEventSeriesExistFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, nil)
	want := `
# HELP plinth_rebuilds_total Rebuilds of stale BaseImages, by outcome: triggered, succeeded, failed, refused (the API server refused the Job).
# TYPE plinth_rebuilds_total counter
plinth_rebuilds_total{outcome="failed"} 0
plinth_rebuilds_total{outcome="refused"} 0
plinth_rebuilds_total{outcome="succeeded"} 0
plinth_rebuilds_total{outcome="triggered"} 0
# HELP plinth_webhook_deliveries_total Webhook deliveries, by kind (rebuild, notification) and outcome (success, failure).
# TYPE plinth_webhook_deliveries_total counter
plinth_webhook_deliveries_total{kind="notification",outcome="failure"} 0
plinth_webhook_deliveries_total{kind="notification",outcome="success"} 0
plinth_webhook_deliveries_total{kind="rebuild",outcome="failure"} 0
plinth_webhook_deliveries_total{kind="rebuild",outcome="success"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "plinth_rebuilds_total", "plinth_webhook_deliveries_total"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"plinth_time_to_patch_seconds", "plinth_vulnerability_time_to_fix_seconds"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 1 {
			t.Errorf("%s: %d series, %v; want 1", name, n, err)
		}
	}
}

func TestRebuildsAndDeliveries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, nil)
	m.ObserveRebuild(RebuildTriggered)
	m.ObserveRebuild(RebuildTriggered)
	m.ObserveRebuild(RebuildSucceeded)
	m.ObserveRebuild(RebuildRefused)
	m.ObserveDelivery(DeliveryRebuild, DeliverySucceeded)
	m.ObserveDelivery(DeliveryNotification, DeliveryFailed)
	m.ObserveDelivery(DeliveryNotification, DeliveryFailed)
	m.ObserveDelivery(DeliveryNotification, DeliverySucceeded)

	want := `
# HELP plinth_rebuilds_total Rebuilds of stale BaseImages, by outcome: triggered, succeeded, failed, refused (the API server refused the Job).
# TYPE plinth_rebuilds_total counter
plinth_rebuilds_total{outcome="failed"} 0
plinth_rebuilds_total{outcome="refused"} 1
plinth_rebuilds_total{outcome="succeeded"} 1
plinth_rebuilds_total{outcome="triggered"} 2
# HELP plinth_webhook_deliveries_total Webhook deliveries, by kind (rebuild, notification) and outcome (success, failure).
# TYPE plinth_webhook_deliveries_total counter
plinth_webhook_deliveries_total{kind="notification",outcome="failure"} 2
plinth_webhook_deliveries_total{kind="notification",outcome="success"} 1
plinth_webhook_deliveries_total{kind="rebuild",outcome="failure"} 0
plinth_webhook_deliveries_total{kind="rebuild",outcome="success"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "plinth_rebuilds_total", "plinth_webhook_deliveries_total"); err != nil {
		t.Fatal(err)
	}
}

func TestTimeToPatchHistograms(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, nil)
	m.ObserveTimeToPatch(90 * time.Minute)
	m.ObserveTimeToPatch(10 * 24 * time.Hour)
	m.ObserveTimeToPatch(200 * 24 * time.Hour) // beyond the last bucket
	m.ObserveCVETimeToFix(30 * time.Minute)

	buckets := func(counts ...int) string {
		var b strings.Builder
		for i, le := range []string{"3600", "7200", "14400", "28800", "57600", "115200", "230400", "460800", "921600", "1.8432e+06", "3.6864e+06", "7.3728e+06"} {
			fmt.Fprintf(&b, "%%[1]s_bucket{le=%q} %d\n", le, counts[i])
		}
		fmt.Fprintf(&b, "%%[1]s_bucket{le=\"+Inf\"} %d\n", counts[len(counts)-1])
		return b.String()
	}
	patch := fmt.Sprintf("# HELP %[1]s Time from a BaseImage turning Stale to the approval of a new digest.\n# TYPE %[1]s histogram\n"+
		buckets(0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3)+"%[1]s_sum %[2]v\n%[1]s_count 3\n",
		"plinth_time_to_patch_seconds", (90*time.Minute + 210*24*time.Hour).Seconds())
	fix := fmt.Sprintf("# HELP %[1]s Time from the first detection of a blocking vulnerability in a BaseImage to the approval of a digest without it.\n# TYPE %[1]s histogram\n"+
		buckets(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)+"%[1]s_sum 1800\n%[1]s_count 1\n",
		"plinth_vulnerability_time_to_fix_seconds")
	if err := testutil.GatherAndCompare(reg, strings.NewReader(patch+fix),
		"plinth_time_to_patch_seconds", "plinth_vulnerability_time_to_fix_seconds"); err != nil {
		t.Fatal(err)
	}
}

func TestObserveOnNilMetrics(t *testing.T) {
	var m *Metrics
	m.ObserveTimeToPatch(time.Hour)
	m.ObserveCVETimeToFix(time.Hour)
	m.ObserveRebuild(RebuildFailed)
	m.ObserveDelivery(DeliveryRebuild, DeliveryFailed)
}
