package controllers

import (
	"fmt"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
)

// record is the last step: it computes every condition, once, from what the
// steps found, and the verdict fields of status.
//
//   - A failure before the digest is known (policy, credentials, registry)
//     keeps the last verdict and says why in Ready, Stalled or Reconciling.
//   - Approved is the verdict on the resolved digest, or Unknown (NotJudged)
//     while that digest cannot be judged; a digest judged before keeps its
//     verdict while the DB loads or a scan fails.
//   - approvedDigest and its approved block follow their own verdict.
//   - Ready follows Approved: True when approved, False with the verdict's
//     reason when refused, False with the scan's reason when not judged.
func (r *BaseImageReconciler) record(s *scope) {
	bi := s.bi
	st := &bi.Status
	if p := s.stop; p != nil {
		switch p.kind {
		case denied:
			setCondition(bi, catalogv1.ApprovedCondition, metav1.ConditionFalse, p.reason, p.message)
			if st.ApprovedDigest != "" {
				revoke(s, p.message)
			}
			markDenied(bi, p.reason, p.message)
		case retrying:
			markRetrying(bi, p.reason, p.message)
		default:
			markStalled(bi, p.reason, p.message)
		}
		return
	}

	switch {
	case s.verdict != nil:
		v := s.verdict
		setCondition(bi, catalogv1.ApprovedCondition, boolStatus(v.Approved), v.ApprovedReason, v.ApprovedMessage)
		setStale(bi, v)
		if s.scan.on {
			st.Vulnerabilities, st.TopFindings, st.Hardening = v.Summary, v.TopFindings, v.Hardening
			r.Scanning.Metrics.SetVulnerabilities(bi.Namespace, bi.Name, v.Summary)
		}
	case judgedBefore(st, s.digest):
		// The digest's last verdict stands while it cannot be scanned now;
		// the Scanned condition says why.
	default:
		setCondition(bi, catalogv1.ApprovedCondition, metav1.ConditionUnknown, catalogv1.NotJudgedReason,
			fmt.Sprintf("Digest %s is not judged yet: %s", s.digest, s.scan.failure.message))
		setStale(bi, s.ageVerdict)
		// Figures of another digest must not stand beside this one.
		st.ScannedDigest, st.LastScanTime, st.VulnDBVersion = "", nil, ""
		st.Vulnerabilities, st.TopFindings, st.Hardening = nil, nil, nil
		r.Scanning.Metrics.ForgetBaseImage(bi.Namespace, bi.Name)
	}
	recordStaleSince(s)
	if recordApproved(s) {
		r.recordTimeToPatch(s)
	}
	recordFirstSeen(s)

	approved := apimeta.FindStatusCondition(st.Conditions, catalogv1.ApprovedCondition)
	f := s.scan.failure
	switch {
	case f != nil && f.kind == stalled:
		markStalled(bi, f.reason, f.message)
	case approved.Status == metav1.ConditionTrue:
		markReady(bi, fmt.Sprintf("Approved digest %s", s.digest))
		if f != nil && f.kind == retrying {
			setCondition(bi, catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingWithRetryReason, f.message)
		}
	case approved.Status == metav1.ConditionFalse:
		markDenied(bi, approved.Reason, approved.Message)
	case f != nil && f.kind == retrying:
		markRetrying(bi, f.reason, f.message)
	case f != nil:
		markNotReady(bi, f.reason, f.message)
	}
}

// judgedBefore tells whether status holds a verdict on digest from an
// earlier reconcile.
func judgedBefore(st *catalogv1.BaseImageStatus, digest string) bool {
	c := apimeta.FindStatusCondition(st.Conditions, catalogv1.ApprovedCondition)
	return digest != "" && st.ScannedDigest == digest && c != nil && c.Status != metav1.ConditionUnknown
}

// setStale sets the Stale condition from a verdict.
func setStale(bi *catalogv1.BaseImage, v *policy.Verdict) {
	status := boolStatus(v.Stale)
	if v.StaleUnknown {
		status = metav1.ConditionUnknown
	}
	setCondition(bi, catalogv1.StaleCondition, status, v.StaleReason, v.StaleMessage)
}

// recordApproved keeps approvedDigest and its verdict: the resolved digest
// becomes the approved one when it passes; the approved digest loses its
// approval when its own verdict is a refusal, never because another digest
// failed.
//
// It tells whether the resolved digest was approved for the first time.
func recordApproved(s *scope) (first bool) {
	st := &s.bi.Status
	if v := s.verdict; v != nil {
		switch {
		case v.Approved:
			if h := &st.History[0]; h.ApprovedAt == nil {
				h.ApprovedAt = &metav1.Time{Time: s.now}
				first = true
			}
			st.ApprovedDigest = s.digest
			st.Approved = approvedBlock(s.digest, approvedAtOf(st, s.digest), v, s.scan.dbVersion)
			return first
		case st.ApprovedDigest == s.digest:
			revoke(s, v.ApprovedMessage)
			return false
		}
	}
	switch {
	case st.ApprovedDigest == "":
		st.Approved = nil
	case st.ApprovedDigest != s.digest && s.approvedVerdict != nil:
		if v := s.approvedVerdict; v.Approved {
			st.Approved = approvedBlock(st.ApprovedDigest, approvedAtOf(st, st.ApprovedDigest), v, s.approvedDBVersion)
		} else {
			revoke(s, v.ApprovedMessage)
		}
	case st.Approved == nil || st.Approved.Digest != st.ApprovedDigest:
		// Not judged in this reconcile, and approved before the approved
		// block existed.
		st.Approved = &catalogv1.ApprovedDigestStatus{Digest: st.ApprovedDigest,
			ApprovedAt: metav1.Time{Time: approvedAtOf(st, st.ApprovedDigest)}}
	}
	return false
}

// approvedBlock is the status of an approved digest from its verdict.
func approvedBlock(digest string, approvedAt time.Time, v *policy.Verdict, dbVersion string) *catalogv1.ApprovedDigestStatus {
	a := &catalogv1.ApprovedDigestStatus{Digest: digest, ApprovedAt: metav1.Time{Time: approvedAt}, VulnDBVersion: dbVersion}
	if v.Summary != nil {
		a.Critical, a.High = v.Summary.Critical.Total, v.Summary.High.Total
	}
	if !v.RevokeDeadline.IsZero() {
		a.Deadline = &metav1.Time{Time: v.RevokeDeadline}
	}
	return a
}

// revoke takes the approval away from the approved digest.
func revoke(s *scope, why string) {
	st := &s.bi.Status
	s.revoked = fmt.Sprintf("Digest %s is no longer approved: %s", st.ApprovedDigest, why)
	st.ApprovedDigest, st.Approved = "", nil
}

// recordFirstSeen keeps, for the findings of the digests judged in this
// reconcile, when each was first detected; findings of a digest not judged
// now keep their record.
func recordFirstSeen(s *scope) {
	st := &s.bi.Status
	if !s.scan.on {
		return
	}
	resolvedJudged := s.verdict != nil
	approvedJudged := s.approvedVerdict != nil || st.ApprovedDigest == "" || st.ApprovedDigest == s.digest
	if !resolvedJudged && s.approvedVerdict == nil {
		return
	}
	m := map[string]time.Time{}
	if !resolvedJudged || !approvedJudged {
		m = firstSeenRecord(st)
	}
	for _, v := range []*policy.Verdict{s.verdict, s.approvedVerdict} {
		if v == nil {
			continue
		}
		for k, t := range v.FirstSeen {
			if old, ok := m[k]; !ok || t.Before(old) {
				m[k] = t
			}
		}
	}
	st.FindingsFirstSeen = firstSeenGroups(m)
}
