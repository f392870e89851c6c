package controllers

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

func TestCountExceptions(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	ex := func(id string, expires time.Time) catalogv1.VulnerabilityException {
		return catalogv1.VulnerabilityException{ID: id, Expires: metav1.NewTime(expires), Justification: "j"}
	}
	tests := []struct {
		name     string
		in       []catalogv1.VulnerabilityException
		counts   catalogv1.ExceptionCounts
		expiring []string
		next     time.Time
	}{
		{name: "none"},
		{
			name:   "far in the future",
			in:     []catalogv1.VulnerabilityException{ex("CVE-1", now.Add(30*day))},
			counts: catalogv1.ExceptionCounts{Active: 1},
			next:   now.Add(23 * day),
		},
		{
			name:     "within seven days",
			in:       []catalogv1.VulnerabilityException{ex("CVE-1", now.Add(30*day)), ex("CVE-2", now.Add(2*day))},
			counts:   catalogv1.ExceptionCounts{Active: 2, Expiring: 1},
			expiring: []string{"CVE-2"},
			next:     now.Add(2 * day),
		},
		{
			name:   "expired, exactly at its time",
			in:     []catalogv1.VulnerabilityException{ex("CVE-1", now), ex("CVE-2", now.Add(-day))},
			counts: catalogv1.ExceptionCounts{Expired: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := countExceptions(tt.in, now)
			if got.counts != tt.counts || !reflect.DeepEqual(got.expiring, tt.expiring) || !got.next.Equal(tt.next) {
				t.Errorf("got %+v %v %v, want %+v %v %v", got.counts, got.expiring, got.next, tt.counts, tt.expiring, tt.next)
			}
		})
	}
	if got := newlyExpiring([]string{"CVE-1"}, []string{"CVE-1", "CVE-2"}); !reflect.DeepEqual(got, []string{"CVE-2"}) {
		t.Errorf("newlyExpiring = %v", got)
	}
}
