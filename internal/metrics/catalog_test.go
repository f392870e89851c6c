package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/testenv"
)

func condition(typ string, status metav1.ConditionStatus) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: "Test", Message: "set by the test", LastTransitionTime: metav1.Now()}
}

func TestCatalogState(t *testing.T) {
	approved := condition(catalogv1.ApprovedCondition, metav1.ConditionTrue)
	refused := condition(catalogv1.ApprovedCondition, metav1.ConditionFalse)
	pending := condition(catalogv1.ApprovedCondition, metav1.ConditionUnknown)
	stale := condition(catalogv1.StaleCondition, metav1.ConditionTrue)
	fresh := condition(catalogv1.StaleCondition, metav1.ConditionFalse)
	staleUnknown := condition(catalogv1.StaleCondition, metav1.ConditionUnknown)
	for _, tc := range []struct {
		name       string
		conditions []metav1.Condition
		suspend    bool
		want       string
	}{
		{"no conditions", nil, false, StateUnknown},
		{"approved, not stale", []metav1.Condition{approved, fresh}, false, StateApproved},
		{"approved, staleness not known", []metav1.Condition{approved, staleUnknown}, false, StateApproved},
		{"approved, no Stale condition", []metav1.Condition{approved}, false, StateApproved},
		{"approved and stale", []metav1.Condition{approved, stale}, false, StateStale},
		{"refused", []metav1.Condition{refused, fresh}, false, StateNotApproved},
		{"refused and stale", []metav1.Condition{refused, stale}, false, StateNotApproved},
		{"verdict pending", []metav1.Condition{pending}, false, StateUnknown},
		{"only stale", []metav1.Condition{stale}, false, StateUnknown},
		{"suspended keeps its verdict", []metav1.Condition{approved, stale}, true, StateStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := &catalogv1.BaseImage{Spec: catalogv1.BaseImageSpec{Suspend: tc.suspend},
				Status: catalogv1.BaseImageStatus{Conditions: tc.conditions}}
			if got := catalogState(bi); got != tc.want {
				t.Errorf("state = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDeadlinesPassed(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	findings := []catalogv1.Finding{
		{ID: "CVE-1", Deadline: at(-time.Hour)},
		{ID: "CVE-2", Deadline: at(time.Hour)},
		{ID: "CVE-3"},
		{ID: "CVE-4", Deadline: at(-48 * time.Hour)},
		{ID: "CVE-5", Deadline: at(0)},
	}
	if n := deadlinesPassed(findings, now); n != 2 {
		t.Errorf("passed deadlines = %d, want 2 (a deadline at this very moment has not passed)", n)
	}
	if n := deadlinesPassed(nil, now); n != 0 {
		t.Errorf("passed deadlines of no findings = %d", n)
	}
}

// TestCatalogCollector reads a small catalog, written to a real API server,
// and checks every series the collector reports.
func TestCatalogCollector(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	c, err := client.New(env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	approved := condition(catalogv1.ApprovedCondition, metav1.ConditionTrue)
	refused := condition(catalogv1.ApprovedCondition, metav1.ConditionFalse)
	pending := condition(catalogv1.ApprovedCondition, metav1.ConditionUnknown)
	stale := condition(catalogv1.StaleCondition, metav1.ConditionTrue)
	fresh := condition(catalogv1.StaleCondition, metav1.ConditionFalse)
	summary := func(set func(s *catalogv1.VulnerabilitySummary)) *catalogv1.VulnerabilitySummary {
		s := &catalogv1.VulnerabilitySummary{}
		set(s)
		return s
	}
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	entries := []struct {
		namespace, name string
		suspend         bool
		status          catalogv1.BaseImageStatus
	}{
		{"team-a", "alpine", false, catalogv1.BaseImageStatus{
			Conditions:    []metav1.Condition{approved, fresh},
			ImageCreated:  ago(72 * time.Hour),
			ScannedDigest: digest,
			Vulnerabilities: summary(func(s *catalogv1.VulnerabilitySummary) {
				s.High = catalogv1.SeverityCount{Total: 2, Fixable: 1}
				s.Low = catalogv1.SeverityCount{Total: 4, Fixable: 4}
			}),
		}},
		{"team-a", "debian", false, catalogv1.BaseImageStatus{
			Conditions:    []metav1.Condition{approved, stale},
			ImageCreated:  ago(240 * time.Hour),
			ScannedDigest: digest,
			Vulnerabilities: summary(func(s *catalogv1.VulnerabilitySummary) {
				s.High = catalogv1.SeverityCount{Total: 3, Fixable: 3}
			}),
			TopFindings: []catalogv1.Finding{
				{ID: "CVE-2026-1", Severity: catalogv1.SeverityHigh, Package: "openssl", FirstSeen: *ago(200 * time.Hour), Deadline: ago(time.Hour), Blocking: true},
				{ID: "CVE-2026-2", Severity: catalogv1.SeverityHigh, Package: "zlib", FirstSeen: *ago(2 * time.Hour), Deadline: ago(-time.Hour), Blocking: true},
				{ID: "CVE-2026-3", Severity: catalogv1.SeverityHigh, Package: "curl", FirstSeen: *ago(2 * time.Hour)},
			},
		}},
		{"team-a", "python", false, catalogv1.BaseImageStatus{
			// The image records no creation time: its age is unknown.
			Conditions:    []metav1.Condition{refused, stale},
			ScannedDigest: digest,
			Vulnerabilities: summary(func(s *catalogv1.VulnerabilitySummary) {
				s.Critical = catalogv1.SeverityCount{Total: 3}
				s.Unknown = catalogv1.SeverityCount{Total: 1, Fixable: 1}
			}),
			TopFindings: []catalogv1.Finding{
				{ID: "CVE-2026-4", Severity: catalogv1.SeverityCritical, Package: "glibc", FirstSeen: *ago(900 * time.Hour), Deadline: ago(100 * time.Hour), Blocking: true},
				{ID: "CVE-2026-5", Severity: catalogv1.SeverityCritical, Package: "glibc", FirstSeen: *ago(900 * time.Hour), Deadline: ago(100 * time.Hour), Blocking: true},
			},
		}},
		// Created, no verdict yet: counted, nothing else.
		{"team-a", "new", false, catalogv1.BaseImageStatus{}},
		// Suspended: counted by the verdict it keeps. Not scanned: no
		// findings, however stale a summary is left in status.
		{"team-b", "frozen", true, catalogv1.BaseImageStatus{
			Conditions:      []metav1.Condition{approved, fresh},
			ImageCreated:    ago(30 * time.Minute),
			Vulnerabilities: summary(func(s *catalogv1.VulnerabilitySummary) { s.Critical.Total = 9 }),
		}},
		{"team-b", "pending", false, catalogv1.BaseImageStatus{Conditions: []metav1.Condition{pending}}},
	}
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range entries {
		bi := &catalogv1.BaseImage{
			ObjectMeta: metav1.ObjectMeta{Namespace: e.namespace, Name: e.name},
			Spec: catalogv1.BaseImageSpec{
				Image:     catalogv1.ImageReference("registry.example.com/base/" + e.name + ":1"),
				PolicyRef: catalogv1.LocalObjectReference{Name: "standard"},
				Suspend:   e.suspend,
			},
		}
		if err := c.Create(ctx, bi); err != nil {
			t.Fatal(err)
		}
		bi.Status = e.status
		if err := c.Status().Update(ctx, bi); err != nil {
			t.Fatalf("writing the status of %s: %v", e.name, err)
		}
	}

	collector := NewCatalogCollector(c, func() time.Time { return now })
	want := `
# HELP plinth_catalog_entries BaseImages by namespace and state: approved, stale (approved but due for a rebuild), not_approved, unknown (no verdict yet). Suspended entries count by the verdict they keep.
# TYPE plinth_catalog_entries gauge
plinth_catalog_entries{namespace="team-a",state="approved"} 1
plinth_catalog_entries{namespace="team-a",state="not_approved"} 1
plinth_catalog_entries{namespace="team-a",state="stale"} 1
plinth_catalog_entries{namespace="team-a",state="unknown"} 1
plinth_catalog_entries{namespace="team-b",state="approved"} 1
plinth_catalog_entries{namespace="team-b",state="not_approved"} 0
plinth_catalog_entries{namespace="team-b",state="stale"} 0
plinth_catalog_entries{namespace="team-b",state="unknown"} 1
# HELP plinth_baseimage_age_seconds Age of each BaseImage's resolved image: now minus the creation time in its configuration. No series when the image records none.
# TYPE plinth_baseimage_age_seconds gauge
plinth_baseimage_age_seconds{name="alpine",namespace="team-a"} 259200
plinth_baseimage_age_seconds{name="debian",namespace="team-a"} 864000
plinth_baseimage_age_seconds{name="frozen",namespace="team-b"} 1800
# HELP plinth_baseimage_findings Open vulnerability findings of each BaseImage's scanned digest, by severity and whether a fixed version exists.
# TYPE plinth_baseimage_findings gauge
plinth_baseimage_findings{fixable="false",name="alpine",namespace="team-a",severity="CRITICAL"} 0
plinth_baseimage_findings{fixable="false",name="alpine",namespace="team-a",severity="HIGH"} 1
plinth_baseimage_findings{fixable="false",name="alpine",namespace="team-a",severity="LOW"} 0
plinth_baseimage_findings{fixable="false",name="alpine",namespace="team-a",severity="MEDIUM"} 0
plinth_baseimage_findings{fixable="false",name="alpine",namespace="team-a",severity="UNKNOWN"} 0
plinth_baseimage_findings{fixable="true",name="alpine",namespace="team-a",severity="CRITICAL"} 0
plinth_baseimage_findings{fixable="true",name="alpine",namespace="team-a",severity="HIGH"} 1
plinth_baseimage_findings{fixable="true",name="alpine",namespace="team-a",severity="LOW"} 4
plinth_baseimage_findings{fixable="true",name="alpine",namespace="team-a",severity="MEDIUM"} 0
plinth_baseimage_findings{fixable="true",name="alpine",namespace="team-a",severity="UNKNOWN"} 0
plinth_baseimage_findings{fixable="false",name="debian",namespace="team-a",severity="CRITICAL"} 0
plinth_baseimage_findings{fixable="false",name="debian",namespace="team-a",severity="HIGH"} 0
plinth_baseimage_findings{fixable="false",name="debian",namespace="team-a",severity="LOW"} 0
plinth_baseimage_findings{fixable="false",name="debian",namespace="team-a",severity="MEDIUM"} 0
plinth_baseimage_findings{fixable="false",name="debian",namespace="team-a",severity="UNKNOWN"} 0
plinth_baseimage_findings{fixable="true",name="debian",namespace="team-a",severity="CRITICAL"} 0
plinth_baseimage_findings{fixable="true",name="debian",namespace="team-a",severity="HIGH"} 3
plinth_baseimage_findings{fixable="true",name="debian",namespace="team-a",severity="LOW"} 0
plinth_baseimage_findings{fixable="true",name="debian",namespace="team-a",severity="MEDIUM"} 0
plinth_baseimage_findings{fixable="true",name="debian",namespace="team-a",severity="UNKNOWN"} 0
plinth_baseimage_findings{fixable="false",name="python",namespace="team-a",severity="CRITICAL"} 3
plinth_baseimage_findings{fixable="false",name="python",namespace="team-a",severity="HIGH"} 0
plinth_baseimage_findings{fixable="false",name="python",namespace="team-a",severity="LOW"} 0
plinth_baseimage_findings{fixable="false",name="python",namespace="team-a",severity="MEDIUM"} 0
plinth_baseimage_findings{fixable="false",name="python",namespace="team-a",severity="UNKNOWN"} 0
plinth_baseimage_findings{fixable="true",name="python",namespace="team-a",severity="CRITICAL"} 0
plinth_baseimage_findings{fixable="true",name="python",namespace="team-a",severity="HIGH"} 0
plinth_baseimage_findings{fixable="true",name="python",namespace="team-a",severity="LOW"} 0
plinth_baseimage_findings{fixable="true",name="python",namespace="team-a",severity="MEDIUM"} 0
plinth_baseimage_findings{fixable="true",name="python",namespace="team-a",severity="UNKNOWN"} 1
# HELP plinth_baseimage_deadlines_passed Findings of each scanned BaseImage whose remediation deadline has passed, among the at most 20 listed in status.topFindings (blocking findings first).
# TYPE plinth_baseimage_deadlines_passed gauge
plinth_baseimage_deadlines_passed{name="alpine",namespace="team-a"} 0
plinth_baseimage_deadlines_passed{name="debian",namespace="team-a"} 1
plinth_baseimage_deadlines_passed{name="python",namespace="team-a"} 2
# HELP plinth_catalog_deadlines_passed BaseImages per namespace with at least one finding past its remediation deadline.
# TYPE plinth_catalog_deadlines_passed gauge
plinth_catalog_deadlines_passed{namespace="team-a"} 2
plinth_catalog_deadlines_passed{namespace="team-b"} 0
`
	if err := testutil.CollectAndCompare(collector, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	// A deleted entry's series go with it, and a namespace left without
	// entries is no longer reported.
	for _, name := range []string{"frozen", "pending"} {
		if err := c.Delete(ctx, &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(ctx, &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "debian"}}); err != nil {
		t.Fatal(err)
	}
	want = `
# HELP plinth_catalog_entries BaseImages by namespace and state: approved, stale (approved but due for a rebuild), not_approved, unknown (no verdict yet). Suspended entries count by the verdict they keep.
# TYPE plinth_catalog_entries gauge
plinth_catalog_entries{namespace="team-a",state="approved"} 1
plinth_catalog_entries{namespace="team-a",state="not_approved"} 1
plinth_catalog_entries{namespace="team-a",state="stale"} 0
plinth_catalog_entries{namespace="team-a",state="unknown"} 1
# HELP plinth_baseimage_age_seconds Age of each BaseImage's resolved image: now minus the creation time in its configuration. No series when the image records none.
# TYPE plinth_baseimage_age_seconds gauge
plinth_baseimage_age_seconds{name="alpine",namespace="team-a"} 259200
# HELP plinth_catalog_deadlines_passed BaseImages per namespace with at least one finding past its remediation deadline.
# TYPE plinth_catalog_deadlines_passed gauge
plinth_catalog_deadlines_passed{namespace="team-a"} 1
`
	if err := testutil.CollectAndCompare(collector, strings.NewReader(want),
		"plinth_catalog_entries", "plinth_baseimage_age_seconds", "plinth_catalog_deadlines_passed"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(collector, "plinth_baseimage_findings"); n != 20 {
		t.Errorf("%d findings series after deleting debian, want the 10 of alpine and the 10 of python", n)
	}

	// A registry with the collector still serves the other series when
	// the catalog cannot be read (here: a client that does not know the
	// BaseImage kind).
	blind, err := client.New(env.Config, client.Options{Scheme: runtime.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := New(reg, nil)
	reg.MustRegister(NewCatalogCollector(blind, nil))
	m.ObserveRebuild(RebuildTriggered)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering with an unreadable catalog: %v", err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "plinth_catalog_") || strings.HasPrefix(mf.GetName(), "plinth_baseimage_age") {
			t.Errorf("%s reported without a catalog", mf.GetName())
		}
	}
	if n, _ := testutil.GatherAndCount(reg, "plinth_rebuilds_total"); n != 4 {
		t.Errorf("plinth_rebuilds_total has %d series beside an unreadable catalog, want 4", n)
	}
}
