package controllers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"github.com/plinth-dev/plinth/internal/metrics"
)

func TestVulnDBHealthRaisesEventsOnTransitionsOnly(t *testing.T) {
	rec := events.NewFakeRecorder(16)
	reg := prometheus.NewRegistry()
	h := &VulnDBHealth{
		Recorder:  rec,
		Regarding: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "plinth-system", Name: "plinth-0"}},
		Metrics:   metrics.New(reg, nil),
		Describe:  func(error) string { return "mirror unavailable (HTTP 503)" },
	}
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	failure := errors.New("GET https://user:secret@mirror.example.com/v2/: 503")
	for i, err := range []error{nil, failure, failure, failure, nil, nil, failure} {
		h.Observe(err, now.Add(time.Duration(i)*time.Minute))
	}
	close(rec.Events)
	var got []string
	for e := range rec.Events {
		got = append(got, e)
	}
	if len(got) != 3 {
		t.Fatalf("events = %q, want 3 (failed, recovered, failed)", got)
	}
	for i, want := range []string{VulnDBUpdateFailedReason, VulnDBUpdateRecoveredReason, VulnDBUpdateFailedReason} {
		if !strings.Contains(got[i], want) {
			t.Errorf("event %d = %q, want reason %s", i, got[i], want)
		}
		if strings.Contains(got[i], "secret") || strings.Contains(got[i], "https://") {
			t.Errorf("event %d leaks the URL: %q", i, got[i])
		}
	}
	if n := metricValue(t, reg, "plinth_vulndb_update_failures_total"); n != 4 {
		t.Errorf("failures counted = %v, want 4", n)
	}
	if ts := metricValue(t, reg, "plinth_vulndb_last_success_timestamp_seconds"); ts != float64(now.Add(5*time.Minute).Unix()) {
		t.Errorf("last success = %v, want %v", ts, now.Add(5*time.Minute).Unix())
	}
}

// metricValue reads the value of a metric without labels from a registry.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
