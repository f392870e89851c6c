package controllers

import (
	"context"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/scan"
)

// judgeResolved is the fifth step: the policy's verdict on the resolved
// digest, from what the earlier steps observed. A digest that could not be
// scanned gets no verdict (its age and upstream still say whether a rebuild
// is due).
func (r *BaseImageReconciler) judgeResolved(_ context.Context, s *scope) {
	st := &s.bi.Status
	in := s.verdictInput()
	if len(st.History) > 0 {
		in.FirstSeen = st.History[0].FirstSeen.Time
	}
	if st.ImageCreated != nil {
		in.ImageCreated = st.ImageCreated.Time
	}
	in.UpstreamDigest = s.upstreamDigest
	in.BaseDigest = builtFrom(st)
	if s.scan.on && !s.scan.ok {
		v := policy.Evaluate(in)
		s.ageVerdict = &v
		return
	}
	if s.scan.on {
		in.Vulnerabilities = s.vulnerabilities(s.scan.findings, approvedAtOf(st, s.digest))
		in.Hardening = s.hardening(s.scan.report)
	}
	v := policy.Evaluate(in)
	s.requireSignature(&v)
	s.verdict = &v
}

// verdictInput is the part of the verdict's input that does not depend on
// the digest judged.
func (s *scope) verdictInput() policy.Input {
	in := policy.Input{Now: s.now, UpstreamUnknownReason: s.upstreamReason, UpstreamUnknownMessage: s.upstreamUnknown}
	if s.policy.Spec.MaxAge != nil {
		in.MaxAge = s.policy.Spec.MaxAge.Duration
	}
	return in
}

// vulnerabilities is the vulnerability input of a verdict on a digest of
// this entry approved at approvedAt (zero: never).
func (s *scope) vulnerabilities(findings []policy.Finding, approvedAt time.Time) *policy.Vulnerabilities {
	return &policy.Vulnerabilities{
		Findings:   findings,
		Policy:     s.policy.Spec.Vulnerabilities,
		Exceptions: s.policy.Spec.Exceptions,
		Image:      string(s.bi.Spec.Image),
		ApprovedAt: approvedAt,
		FirstSeen:  firstSeenRecord(&s.bi.Status),
	}
}

// hardening is the hardening and secrets input of a verdict on the
// scanned report.
func (s *scope) hardening(report *scan.Report) *policy.Hardening {
	h := &policy.Hardening{
		Policy:         s.policy.Spec.Hardening,
		Annotations:    report.Annotations,
		SecretsSkipped: len(report.SecretsSkipped),
		Exceptions:     s.policy.Spec.Exceptions,
		Image:          string(s.bi.Spec.Image),
	}
	for _, img := range report.Images {
		f := policy.ImageFacts{Platform: img.Platform, User: img.User, CompressedSize: img.CompressedSize,
			Annotations: img.Annotations, Executables: img.Executables}
		for _, su := range img.Setuid {
			f.Setuid = append(f.Setuid, su.Path)
		}
		h.Images = append(h.Images, f)
	}
	for _, sf := range report.Secrets {
		h.Secrets = append(h.Secrets, policy.Secret{RuleID: sf.RuleID, Path: sf.Path, Layer: sf.Layer})
	}
	return h
}

// approvedAtOf returns when digest was first approved: from the approved
// block, or else from the history.
func approvedAtOf(st *catalogv1.BaseImageStatus, digest string) time.Time {
	if a := st.Approved; a != nil && a.Digest == digest {
		return a.ApprovedAt.Time
	}
	for _, h := range st.History {
		if h.Digest == digest && h.ApprovedAt != nil {
			return h.ApprovedAt.Time
		}
	}
	return time.Time{}
}

// firstSeenRecord returns when each recorded finding of the entry was first
// detected: the findingsFirstSeen record, completed by the findings listed
// in status (which older versions of plinth kept alone).
func firstSeenRecord(st *catalogv1.BaseImageStatus) map[string]time.Time {
	m := map[string]time.Time{}
	for _, f := range st.TopFindings {
		k := policy.Finding{ID: f.ID, Package: f.Package, InstalledVersion: f.InstalledVersion}.Key()
		m[k] = f.FirstSeen.Time
	}
	for _, g := range st.FindingsFirstSeen {
		for _, k := range g.Findings {
			if t, ok := m[k]; !ok || g.Since.Time.Before(t) {
				m[k] = g.Since.Time
			}
		}
	}
	return m
}

// firstSeenGroups turns a record into status form: findings grouped by
// first detection, oldest first, at most catalogv1.MaxFirstSeen findings
// (the oldest are kept: their deadlines come first).
func firstSeenGroups(m map[string]time.Time) []catalogv1.FirstSeenGroup {
	type kv struct {
		k string
		t time.Time
	}
	all := make([]kv, 0, len(m))
	for k, t := range m {
		all = append(all, kv{k, t.UTC().Truncate(time.Second)})
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].t.Equal(all[j].t) {
			return all[i].t.Before(all[j].t)
		}
		return all[i].k < all[j].k
	})
	all = all[:min(len(all), catalogv1.MaxFirstSeen)]
	var out []catalogv1.FirstSeenGroup
	for _, e := range all {
		if n := len(out); n > 0 && out[n-1].Since.Time.Equal(e.t) {
			out[n-1].Findings = append(out[n-1].Findings, e.k)
			continue
		}
		out = append(out, catalogv1.FirstSeenGroup{Since: metav1.Time{Time: e.t}, Findings: []string{e.k}})
	}
	return out
}
