package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

func i32(v int32) *int32 { return &v }

func TestVulnerabilityVerdict(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	crit := Finding{ID: "CVE-2026-0001", Severity: catalogv1.SeverityCritical, Package: "musl", InstalledVersion: "1.2.5-r0", FixedVersion: "1.2.5-r1"}
	critUnfixed := Finding{ID: "CVE-2026-0002", Severity: catalogv1.SeverityCritical, Package: "busybox", InstalledVersion: "1.37.0-r0"}
	medium := func(id string) Finding {
		return Finding{ID: id, Severity: catalogv1.SeverityMedium, Package: "zlib", InstalledVersion: "1.3-r0", FixedVersion: "1.3-r1"}
	}
	exception := func(id string, expires time.Time, image string) catalogv1.VulnerabilityException {
		return catalogv1.VulnerabilityException{ID: id, Expires: metav1.NewTime(expires), Image: image, Justification: "not reachable"}
	}
	windows := &catalogv1.VulnerabilityPolicy{RemediationWindows: &catalogv1.SeverityWindows{Critical: &metav1.Duration{Duration: 7 * day}}}

	tests := []struct {
		name        string
		in          Vulnerabilities
		approved    bool
		reason      string
		mentions    string
		stale       string // Stale reason
		deadline    time.Time
		firstTopDue *time.Time
	}{
		{
			name:     "no findings",
			in:       Vulnerabilities{},
			approved: true, reason: catalogv1.PolicyPassedReason, stale: catalogv1.UpToDateReason,
		},
		{
			name:     "a critical finding blocks by default and its fix makes the image stale",
			in:       Vulnerabilities{Findings: []Finding{crit}},
			reason:   catalogv1.VulnerabilitiesExceedThresholdReason,
			mentions: "CVE-2026-0001 (CRITICAL, musl)",
			stale:    catalogv1.FixAvailableReason,
		},
		{
			name:     "medium findings pass by default",
			in:       Vulnerabilities{Findings: []Finding{medium("CVE-2026-0100")}},
			approved: true, reason: catalogv1.PolicyPassedReason, stale: catalogv1.UpToDateReason,
		},
		{
			name:     "ignoreUnfixed leaves out a finding without a fix",
			in:       Vulnerabilities{Findings: []Finding{critUnfixed}, Policy: &catalogv1.VulnerabilityPolicy{IgnoreUnfixed: true}},
			approved: true, reason: catalogv1.PolicyPassedReason, stale: catalogv1.UpToDateReason,
		},
		{
			name:     "an unfixed critical blocks but is no reason to rebuild",
			in:       Vulnerabilities{Findings: []Finding{critUnfixed}},
			reason:   catalogv1.VulnerabilitiesExceedThresholdReason,
			stale:    catalogv1.UpToDateReason,
			mentions: "CVE-2026-0002",
		},
		{
			name: "maxCount allows some medium findings",
			in: Vulnerabilities{Findings: []Finding{medium("CVE-1"), medium("CVE-2")},
				Policy: &catalogv1.VulnerabilityPolicy{BlockSeverities: []catalogv1.Severity{catalogv1.SeverityCritical}, MaxCount: &catalogv1.SeverityLimits{Medium: i32(2)}}},
			approved: true, reason: catalogv1.PolicyPassedReason, stale: catalogv1.UpToDateReason,
		},
		{
			name: "more than maxCount blocks",
			in: Vulnerabilities{Findings: []Finding{medium("CVE-1"), medium("CVE-2"), medium("CVE-3")},
				Policy: &catalogv1.VulnerabilityPolicy{BlockSeverities: []catalogv1.Severity{catalogv1.SeverityCritical}, MaxCount: &catalogv1.SeverityLimits{Medium: i32(2)}}},
			reason: catalogv1.VulnerabilitiesExceedThresholdReason, mentions: "CVE-1 (MEDIUM, zlib), CVE-2 (MEDIUM, zlib), CVE-3 (MEDIUM, zlib)",
			stale: catalogv1.FixAvailableReason,
		},
		{
			name:     "an active exception lets it pass until it expires",
			in:       Vulnerabilities{Findings: []Finding{crit}, Exceptions: []catalogv1.VulnerabilityException{exception("cve-2026-0001", now.Add(day), "")}},
			approved: true, reason: catalogv1.PolicyPassedReason, stale: catalogv1.UpToDateReason,
			deadline: now.Add(day),
		},
		{
			name:   "an expired exception no longer applies",
			in:     Vulnerabilities{Findings: []Finding{crit}, Exceptions: []catalogv1.VulnerabilityException{exception("CVE-2026-0001", now, "")}},
			reason: catalogv1.ExceptionExpiredReason, mentions: "CVE-2026-0001", stale: catalogv1.FixAvailableReason,
		},
		{
			name: "an exception for another image does not apply",
			in: Vulnerabilities{Findings: []Finding{crit}, Image: "registry.example.com/base/alpine:3.22",
				Exceptions: []catalogv1.VulnerabilityException{exception("CVE-2026-0001", now.Add(day), "registry.example.com/base/python*")}},
			reason: catalogv1.VulnerabilitiesExceedThresholdReason, stale: catalogv1.FixAvailableReason,
		},
		{
			name: "an exception for this image applies",
			in: Vulnerabilities{Findings: []Finding{crit}, Image: "registry.example.com/base/python:3.13",
				Exceptions: []catalogv1.VulnerabilityException{exception("CVE-2026-0001", now.Add(day), "registry.example.com/base/python*")}},
			approved: true, reason: catalogv1.PolicyPassedReason, stale: catalogv1.UpToDateReason, deadline: now.Add(day),
		},
		{
			name:   "a new digest gets no remediation window",
			in:     Vulnerabilities{Findings: []Finding{crit}, Policy: windows},
			reason: catalogv1.VulnerabilitiesExceedThresholdReason, stale: catalogv1.FixAvailableReason,
		},
		{
			name: "an approved digest keeps its approval within the window",
			in: Vulnerabilities{Findings: []Finding{crit}, Policy: windows, ApprovedAt: now.Add(-30 * day),
				FirstSeen: map[string]time.Time{crit.Key(): now.Add(-2 * day)}},
			approved: true, reason: catalogv1.PolicyPassedReason, stale: catalogv1.FixAvailableReason,
			deadline: now.Add(5 * day),
		},
		{
			name:     "a finding detected just now starts its window now",
			in:       Vulnerabilities{Findings: []Finding{crit}, Policy: windows, ApprovedAt: now.Add(-30 * day)},
			approved: true, reason: catalogv1.PolicyPassedReason, stale: catalogv1.FixAvailableReason,
			deadline: now.Add(7 * day),
		},
		{
			name: "approval is revoked once the window has passed",
			in: Vulnerabilities{Findings: []Finding{crit}, Policy: windows, ApprovedAt: now.Add(-30 * day),
				FirstSeen: map[string]time.Time{crit.Key(): now.Add(-7 * day)}},
			reason: catalogv1.VulnerabilitiesExceedThresholdReason, stale: catalogv1.FixAvailableReason,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			v := Evaluate(Input{Now: now, Vulnerabilities: &in})
			if v.Approved != tt.approved || v.ApprovedReason != tt.reason {
				t.Errorf("approved = %v %s (%s), want %v %s", v.Approved, v.ApprovedReason, v.ApprovedMessage, tt.approved, tt.reason)
			}
			if !strings.Contains(v.ApprovedMessage, tt.mentions) {
				t.Errorf("message %q does not mention %q", v.ApprovedMessage, tt.mentions)
			}
			if v.StaleReason != tt.stale {
				t.Errorf("stale = %s (%s), want %s", v.StaleReason, v.StaleMessage, tt.stale)
			}
			if !v.NextDeadline.Equal(tt.deadline) {
				t.Errorf("next deadline = %v, want %v", v.NextDeadline, tt.deadline)
			}
			if v.Summary == nil {
				t.Fatal("no summary")
			}
		})
	}
}

func TestSummaryAndTopFindingsStaySmall(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var fs []Finding
	for i := range 10000 {
		sev := catalogv1.Severities[i%len(catalogv1.Severities)]
		f := Finding{ID: fmt.Sprintf("CVE-2026-%05d", i), Severity: sev, Package: fmt.Sprintf("pkg%d", i%300), InstalledVersion: "1.0"}
		if i%2 == 0 {
			f.FixedVersion = "1.1"
		}
		fs = append(fs, f)
	}
	v := Evaluate(Input{Now: now, Vulnerabilities: &Vulnerabilities{Findings: fs}})
	if v.Summary.Critical.Total != 2000 || v.Summary.Critical.Fixable != 1000 || v.Summary.Unknown.Total != 2000 {
		t.Errorf("summary = %+v", v.Summary)
	}
	if len(v.TopFindings) != catalogv1.MaxTopFindings {
		t.Fatalf("%d top findings", len(v.TopFindings))
	}
	for _, f := range v.TopFindings {
		if !f.Blocking || (f.Severity != catalogv1.SeverityCritical && f.Severity != catalogv1.SeverityHigh) {
			t.Errorf("top finding %+v is not a blocking critical or high one", f)
		}
	}
	if v.TopFindings[0].Severity != catalogv1.SeverityCritical {
		t.Errorf("first top finding is %s", v.TopFindings[0].Severity)
	}
	if len(v.ApprovedMessage) > 300 {
		t.Errorf("message of %d bytes", len(v.ApprovedMessage))
	}
}
