package controllers

import (
	"sort"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// recordStaleSince notes in history when the entry became Stale on the
// resolved digest; time to patch counts from it.
func recordStaleSince(s *scope) {
	st := &s.bi.Status
	if len(st.History) == 0 || st.History[0].Digest != s.digest {
		return
	}
	if h := &st.History[0]; h.StaleSince == nil && apimeta.IsStatusConditionTrue(st.Conditions, catalogv1.StaleCondition) {
		h.StaleSince = &metav1.Time{Time: s.now}
	}
}

// recordTimeToPatch is called when the resolved digest is approved for the
// first time. When the digest it replaced was stale, history records how
// long the entry stayed stale; and for every blocking finding of the
// earlier digests that the new one no longer has, how long it stayed open.
func (r *BaseImageReconciler) recordTimeToPatch(s *scope) {
	st := &s.bi.Status
	if len(st.History) < 2 {
		return
	}
	h, prev := &st.History[0], &st.History[1]
	if prev.StaleSince != nil && prev.StaleSince.Time.Before(s.now) {
		d := s.now.Sub(prev.StaleSince.Time)
		h.TimeToPatch = &metav1.Duration{Duration: d}
		r.Metrics.ObserveTimeToPatch(d)
	}
	if !s.scan.ok {
		return
	}
	present := map[string]bool{}
	for _, f := range s.scan.findings {
		present[f.ID] = true
	}
	// The earliest detection of each vulnerability id no longer present.
	open := map[string]time.Time{}
	for key, since := range firstSeenRecord(s.before) {
		id, _, _ := strings.Cut(key, "|")
		if present[id] {
			continue
		}
		if t, ok := open[id]; !ok || since.Before(t) {
			open[id] = since
		}
	}
	fixed := make([]catalogv1.FixedFinding, 0, len(open))
	for id, since := range open {
		d := s.now.Sub(since)
		r.Metrics.ObserveCVETimeToFix(d)
		fixed = append(fixed, catalogv1.FixedFinding{ID: id, OpenFor: metav1.Duration{Duration: d}})
	}
	sort.Slice(fixed, func(i, j int) bool {
		if fixed[i].OpenFor != fixed[j].OpenFor {
			return fixed[i].OpenFor.Duration > fixed[j].OpenFor.Duration
		}
		return fixed[i].ID < fixed[j].ID
	})
	if len(fixed) > catalogv1.MaxFixedFindings {
		fixed = fixed[:catalogv1.MaxFixedFindings]
	}
	if len(fixed) > 0 {
		h.Fixed = fixed
	}
}
