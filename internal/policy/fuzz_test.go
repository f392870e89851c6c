package policy

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// FuzzEvaluate feeds the verdict arbitrary findings, ages and exceptions:
// it must never panic, must be deterministic, and must keep its bounds.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4}, int64(24), int64(720), int64(3), false, "CVE-2024-1")
	f.Add([]byte{}, int64(0), int64(0), int64(0), true, "")
	f.Add([]byte{255, 7, 7, 7, 9, 200, 13}, int64(-5), int64(1), int64(-100), true, "CVE-*")
	f.Fuzz(func(t *testing.T, raw []byte, ageHours, maxAgeHours, exceptionDays int64, ignoreUnfixed bool, exceptionID string) {
		now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		sevs := catalogv1.Severities
		var findings []Finding
		first := map[string]time.Time{}
		for i, b := range raw {
			fd := Finding{
				ID:               fmt.Sprintf("CVE-2024-%d", int(b)%17),
				Severity:         sevs[int(b)%len(sevs)],
				Package:          fmt.Sprintf("pkg%d", int(b)%5),
				InstalledVersion: "1.0",
			}
			if b%3 == 0 {
				fd.FixedVersion = "1.1"
			}
			findings = append(findings, fd)
			if i%2 == 0 {
				first[fd.Key()] = now.Add(-time.Duration(int(b)) * time.Hour)
			}
		}
		exc := []catalogv1.VulnerabilityException{{ID: exceptionID, Expires: metav1.NewTime(now.Add(time.Duration(exceptionDays%10000) * 24 * time.Hour))}}
		in := Input{
			Now:          now,
			ImageCreated: now.Add(-time.Duration(ageHours%1000000) * time.Hour),
			MaxAge:       time.Duration(maxAgeHours%1000000) * time.Hour,
			Vulnerabilities: &Vulnerabilities{
				Findings:   findings,
				Policy:     &catalogv1.VulnerabilityPolicy{IgnoreUnfixed: ignoreUnfixed},
				Exceptions: exc,
				Image:      "registry.example.com/base/python:3.13",
				ApprovedAt: now.Add(-48 * time.Hour),
				FirstSeen:  first,
			},
		}
		v1, v2 := Evaluate(in), Evaluate(in)
		if !reflect.DeepEqual(v1, v2) {
			t.Fatal("Evaluate is not deterministic")
		}
		if len(v1.TopFindings) > catalogv1.MaxTopFindings {
			t.Fatalf("%d top findings", len(v1.TopFindings))
		}
		if v1.Approved != (v1.ApprovedReason == catalogv1.PolicyPassedReason) {
			t.Fatalf("approved %v with reason %s", v1.Approved, v1.ApprovedReason)
		}
		if v1.Stale && v1.StaleUnknown {
			t.Fatal("stale and unknown at once")
		}
		if v1.Summary == nil {
			t.Fatal("no summary for judged vulnerabilities")
		}
	})
}
