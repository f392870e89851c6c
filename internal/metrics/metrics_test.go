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
