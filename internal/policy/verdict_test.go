package policy

import (
	"reflect"
	"testing"
	"time"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name         string
		in           Input
		approved     bool
		approvedWhy  string
		stale        bool
		staleWhy     string
		nextDeadline time.Time
	}{
		{
			name:        "allowed registry, young image, no upstream",
			in:          Input{Now: now, ImageCreated: now.Add(-day), MaxAge: 30 * day},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			staleWhy:    catalogv1.UpToDateReason, nextDeadline: now.Add(29 * day),
		},
		{
			name:        "older than maxAge",
			in:          Input{Now: now, ImageCreated: now.Add(-31 * day), MaxAge: 30 * day},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			stale:       true, staleWhy: catalogv1.MaxAgeExceededReason,
		},
		{
			name:        "exactly maxAge old is stale",
			in:          Input{Now: now, ImageCreated: now.Add(-30 * day), MaxAge: 30 * day},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			stale:       true, staleWhy: catalogv1.MaxAgeExceededReason,
		},
		{
			name:        "no maxAge never stale by age",
			in:          Input{Now: now, ImageCreated: now.Add(-3650 * day)},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			staleWhy:    catalogv1.UpToDateReason,
		},
		{
			name:        "unknown creation time never stale by age",
			in:          Input{Now: now, MaxAge: day},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			staleWhy:    catalogv1.UpToDateReason,
		},
		{
			name:        "upstream moved",
			in:          Input{Now: now, UpstreamDigest: "sha256:b", BaseDigest: "sha256:a"},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			stale:       true, staleWhy: catalogv1.UpstreamUpdatedReason,
		},
		{
			name:        "upstream unchanged",
			in:          Input{Now: now, UpstreamDigest: "sha256:a", BaseDigest: "sha256:a"},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			staleWhy:    catalogv1.UpToDateReason,
		},
		{
			name:        "age wins over upstream",
			in:          Input{Now: now, ImageCreated: now.Add(-2 * day), MaxAge: day, UpstreamDigest: "sha256:b", BaseDigest: "sha256:a"},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			stale:       true, staleWhy: catalogv1.MaxAgeExceededReason,
		},
		{
			name:        "upstream stale still has an age deadline",
			in:          Input{Now: now, ImageCreated: now, MaxAge: day, UpstreamDigest: "sha256:b", BaseDigest: "sha256:a"},
			approved:    true,
			approvedWhy: catalogv1.PolicyPassedReason,
			stale:       true, staleWhy: catalogv1.UpstreamUpdatedReason, nextDeadline: now.Add(day),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.in)
			if v.Approved != tt.approved || v.ApprovedReason != tt.approvedWhy {
				t.Errorf("approved = %v %s, want %v %s", v.Approved, v.ApprovedReason, tt.approved, tt.approvedWhy)
			}
			if v.Stale != tt.stale || v.StaleReason != tt.staleWhy {
				t.Errorf("stale = %v %s, want %v %s", v.Stale, v.StaleReason, tt.stale, tt.staleWhy)
			}
			if !v.NextDeadline.Equal(tt.nextDeadline) {
				t.Errorf("next deadline = %v, want %v", v.NextDeadline, tt.nextDeadline)
			}
			if v.ApprovedMessage == "" || v.StaleMessage == "" {
				t.Errorf("empty message: %+v", v)
			}
		})
	}
}

func TestEvaluateMessagesDoNotDependOnNow(t *testing.T) {
	created := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Input{ImageCreated: created, MaxAge: time.Hour, UpstreamDigest: "sha256:b", BaseDigest: "sha256:a"}
	in.Now = created.Add(2 * time.Hour)
	a := Evaluate(in)
	in.Now = created.Add(2000 * time.Hour)
	b := Evaluate(in)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("verdict changed with the clock alone:\n%+v\n%+v", a, b)
	}
}
