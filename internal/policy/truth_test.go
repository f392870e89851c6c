package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

func TestUnknownCreationTimeFallsBackToFirstSeen(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name      string
		firstSeen time.Time
		stale     bool
		mentions  string
		deadline  time.Time
	}{
		{"seen recently", now.Add(-day), false, "", now.Add(29 * day)},
		{"seen longer ago than maxAge", now.Add(-31 * day), true, "first saw it", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Evaluate(Input{Now: now, FirstSeen: tc.firstSeen, MaxAge: 30 * day})
			if v.Stale != tc.stale {
				t.Fatalf("stale = %v (%s), want %v", v.Stale, v.StaleMessage, tc.stale)
			}
			if !strings.Contains(v.StaleMessage, tc.mentions) {
				t.Errorf("message %q does not mention %q", v.StaleMessage, tc.mentions)
			}
			if !v.NextDeadline.Equal(tc.deadline) {
				t.Errorf("next deadline = %v, want %v", v.NextDeadline, tc.deadline)
			}
		})
	}
}

func TestIsUnknownCreationTime(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{
		{time.Time{}, true},
		{time.Unix(0, 0), true},
		{time.Unix(1, 0), true},
		{time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		if got := IsUnknownCreationTime(tc.t); got != tc.want {
			t.Errorf("IsUnknownCreationTime(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

func TestAnUnreadableUpstreamMakesStaleUnknownOnlyWhenNothingElseIsKnown(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	in := Input{Now: now, UpstreamUnknownReason: catalogv1.UpstreamUnavailableReason, UpstreamUnknownMessage: "cannot read"}
	v := Evaluate(in)
	if v.Stale || !v.StaleUnknown || v.StaleReason != catalogv1.UpstreamUnavailableReason {
		t.Errorf("got stale=%v unknown=%v %s, want Unknown UpstreamUnavailable", v.Stale, v.StaleUnknown, v.StaleReason)
	}
	if !v.Approved {
		t.Errorf("an unreadable upstream must not refuse the image: %s", v.ApprovedMessage)
	}
	in.ImageCreated, in.MaxAge = now.Add(-48*time.Hour), 24*time.Hour
	if v := Evaluate(in); !v.Stale || v.StaleUnknown || v.StaleReason != catalogv1.MaxAgeExceededReason {
		t.Errorf("a known reason wins: got stale=%v unknown=%v %s", v.Stale, v.StaleUnknown, v.StaleReason)
	}
}

// Every blocking finding's first detection is returned to be kept, not only
// those listed in status, and deadlines count from it.
func TestFirstSeenIsReturnedForEveryBlockingFinding(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(48 * time.Hour)
	var findings []Finding
	record := map[string]time.Time{}
	for i := range 50 {
		f := Finding{ID: fmt.Sprintf("CVE-2026-%04d", i), Severity: catalogv1.SeverityCritical, Package: fmt.Sprintf("pkg%02d", i),
			InstalledVersion: "1", FixedVersion: "2"}
		findings = append(findings, f)
		record[f.Key()] = t0
	}
	var exceptions []catalogv1.VulnerabilityException
	for i := range 30 {
		exceptions = append(exceptions, catalogv1.VulnerabilityException{ID: fmt.Sprintf("CVE-2026-%04d", i),
			Expires: metav1.NewTime(t0.Add(1000 * time.Hour)), Justification: "accepted"})
	}
	v := Evaluate(Input{Now: now, Vulnerabilities: &Vulnerabilities{
		Findings: findings, Exceptions: exceptions, ApprovedAt: t0, FirstSeen: record,
		Policy: &catalogv1.VulnerabilityPolicy{RemediationWindows: &catalogv1.SeverityWindows{Critical: &metav1.Duration{Duration: 72 * time.Hour}}},
	}})
	if !v.Approved {
		t.Fatalf("within the window the digest stays approved: %s", v.ApprovedMessage)
	}
	if len(v.FirstSeen) != 50 {
		t.Errorf("first detections returned = %d, want 50 (20 blocking, 30 excepted)", len(v.FirstSeen))
	}
	for k, ts := range v.FirstSeen {
		if !ts.Equal(t0) {
			t.Errorf("%s first seen %v, want %v", k, ts, t0)
		}
	}
	for _, f := range v.TopFindings {
		if f.Blocking && (f.Deadline == nil || !f.Deadline.Time.Equal(t0.Add(72*time.Hour))) {
			t.Errorf("%s deadline %v, want %v", f.ID, f.Deadline, t0.Add(72*time.Hour))
		}
	}
	if !v.RevokeDeadline.Equal(t0.Add(72 * time.Hour)) {
		t.Errorf("revoke deadline = %v, want the window's end %v", v.RevokeDeadline, t0.Add(72*time.Hour))
	}
}

func TestRevokeDeadlineIsTheExpiryOfAnExceptionTheApprovalNeeds(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	crit := Finding{ID: "CVE-2026-0001", Severity: catalogv1.SeverityCritical, Package: "musl", InstalledVersion: "1", FixedVersion: "2"}
	low := Finding{ID: "CVE-2026-0002", Severity: catalogv1.SeverityLow, Package: "zlib", InstalledVersion: "1"}
	exp := now.Add(240 * time.Hour)
	v := Evaluate(Input{Now: now, Vulnerabilities: &Vulnerabilities{Findings: []Finding{crit, low}, Exceptions: []catalogv1.VulnerabilityException{
		{ID: crit.ID, Expires: metav1.NewTime(exp), Justification: "x"},
		{ID: low.ID, Expires: metav1.NewTime(now.Add(time.Hour)), Justification: "x"},
	}}})
	if !v.Approved || !v.RevokeDeadline.Equal(exp) {
		t.Errorf("approved=%v revoke deadline=%v, want true %v (the LOW exception does not matter)", v.Approved, v.RevokeDeadline, exp)
	}
}
