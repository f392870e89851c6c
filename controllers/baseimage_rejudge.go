package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
)

// rejudgeApproved is the sixth step: when the approved digest is not the
// resolved one (the tag moved to a digest that is refused or not judged
// yet), it is judged again on its own merits under the current DB and
// policy. Its layers are in the layer cache, so this downloads no layer;
// under an unchanged DB the scanner answers from its result cache. When it
// cannot be scanned now, its last verdict stays.
func (r *BaseImageReconciler) rejudgeApproved(ctx context.Context, s *scope) {
	st := &s.bi.Status
	ad := st.ApprovedDigest
	if ad == "" || ad == s.digest {
		return
	}
	in := s.verdictInput()
	if r.Scanning != nil {
		req, err := r.scanRequest(s, s.ref.Context().Digest(ad))
		if err != nil {
			return
		}
		report, err := r.Scanning.Scanner.Scan(ctx, req)
		if err != nil {
			ctrl.LoggerFrom(ctx).V(1).Info("Cannot judge the approved digest again", "digest", ad, "error", err.Error())
			return
		}
		in.Vulnerabilities = s.vulnerabilities(findingsOf(report), approvedAtOf(st, ad))
		in.Hardening = s.hardening(report)
		s.approvedDBVersion, s.approvedReport = report.DBVersion, report
	}
	v := policy.Evaluate(in)
	if s.verifyMode == catalogv1.VerificationEnforce {
		// The approved digest keeps its approval only with a valid
		// signature under the current trust; when that cannot be checked
		// now, its last verdict stays.
		res, p := r.checkPublisher(ctx, s, s.ref.Context().Digest(ad))
		if p != nil {
			return
		}
		applySignature(&v, s.verifyMode, ad, res)
	}
	s.approvedVerdict = &v
}
