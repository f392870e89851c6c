package metrics

import (
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
