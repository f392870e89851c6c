package controllers

import (
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// recordTransitions emits one event for each change a user would notice: a
// new digest, a change of the verdict, a rebuild falling due, an approval
// revoked, a stall, and a recovery. Conditions that merely echo another
// (Ready after Approved, Stalled PolicyDenied after a refusal) add none, and
// the Scanned condition adds none: a DB that loads or recovers does not
// flood the catalog with events.
func (r *BaseImageReconciler) recordTransitions(before, after *catalogv1.BaseImage, s *scope) {
	if r.Recorder == nil {
		return
	}
	emit := func(typ, reason, action, msg string) {
		r.Recorder.Eventf(after, nil, typ, reason, action, "%s", msg)
	}
	if before.Status.ResolvedDigest != after.Status.ResolvedDigest && after.Status.ResolvedDigest != "" {
		emit(corev1.EventTypeNormal, catalogv1.NewDigestReason, "Resolve",
			"Resolved "+string(after.Spec.Image)+" to "+after.Status.ResolvedDigest)
	}
	if s.revoked != "" {
		emit(corev1.EventTypeWarning, catalogv1.ApprovalRevokedReason, "Approve", s.revoked)
	}
	changed := func(typ string) *metav1.Condition {
		if !conditionChanged(before.Status.Conditions, after.Status.Conditions, typ) {
			return nil
		}
		return apimeta.FindStatusCondition(after.Status.Conditions, typ)
	}
	verdictEvent := false
	if c := changed(catalogv1.ApprovedCondition); c != nil {
		switch c.Status {
		case metav1.ConditionTrue:
			emit(corev1.EventTypeNormal, c.Reason, "Approve", c.Message)
			verdictEvent = true
		case metav1.ConditionFalse:
			emit(corev1.EventTypeWarning, c.Reason, "Approve", c.Message)
			verdictEvent = true
		}
	}
	if c := changed(catalogv1.StaleCondition); c != nil && c.Status == metav1.ConditionTrue {
		emit(corev1.EventTypeWarning, c.Reason, "Evaluate", c.Message)
	}
	if c := changed(catalogv1.StalledCondition); c != nil && c.Status == metav1.ConditionTrue && c.Reason != catalogv1.PolicyDeniedReason {
		emit(corev1.EventTypeWarning, c.Reason, "Reconcile", c.Message)
	}
	if c := changed(catalogv1.ReadyCondition); c != nil && c.Status == metav1.ConditionTrue && !verdictEvent {
		// Recovered without a new verdict: a credential was fixed, the
		// registry came back.
		emit(corev1.EventTypeNormal, c.Reason, "Reconcile", c.Message)
	}
}
