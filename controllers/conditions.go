package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// conditionsObject is an API object with status conditions.
type conditionsObject interface {
	GetGeneration() int64
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// setCondition sets a condition, keeping its transition time when its
// status does not change.
func setCondition(obj conditionsObject, typ string, status metav1.ConditionStatus, reason, message string) {
	c := obj.GetConditions()
	meta.SetStatusCondition(&c, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: obj.GetGeneration(),
	})
	obj.SetConditions(c)
}

// removeCondition deletes a condition if present.
func removeCondition(obj conditionsObject, typ string) {
	c := obj.GetConditions()
	meta.RemoveStatusCondition(&c, typ)
	obj.SetConditions(c)
}

func boolStatus(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

// markStalled records that plinth cannot progress without someone acting:
// Stalled=True and Ready=False with the same reason; Reconciling is removed.
func markStalled(obj conditionsObject, reason, message string) {
	removeCondition(obj, catalogv1.ReconcilingCondition)
	setCondition(obj, catalogv1.StalledCondition, metav1.ConditionTrue, reason, message)
	setCondition(obj, catalogv1.ReadyCondition, metav1.ConditionFalse, reason, message)
}

// markDenied records that the policy refuses the entry: Stalled=True with
// reason PolicyDenied (someone must rebuild or change the spec or policy),
// and Ready=False with the verdict's own reason.
func markDenied(obj conditionsObject, reason, message string) {
	removeCondition(obj, catalogv1.ReconcilingCondition)
	setCondition(obj, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PolicyDeniedReason, message)
	setCondition(obj, catalogv1.ReadyCondition, metav1.ConditionFalse, reason, message)
}

// markNotReady records that the entry waits on something that resolves by
// itself (a vulnerability DB, for one): Ready=False, neither Reconciling nor
// Stalled.
func markNotReady(obj conditionsObject, reason, message string) {
	removeCondition(obj, catalogv1.ReconcilingCondition)
	removeCondition(obj, catalogv1.StalledCondition)
	setCondition(obj, catalogv1.ReadyCondition, metav1.ConditionFalse, reason, message)
}

// markRetrying records a transient failure that plinth retries by itself:
// Reconciling=True (ProgressingWithRetry) and Ready=False; Stalled is
// removed.
func markRetrying(obj conditionsObject, reason, message string) {
	removeCondition(obj, catalogv1.StalledCondition)
	setCondition(obj, catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingWithRetryReason, message)
	setCondition(obj, catalogv1.ReadyCondition, metav1.ConditionFalse, reason, message)
}

// markReady records success: Ready=True, and neither Reconciling nor
// Stalled.
func markReady(obj conditionsObject, message string) {
	removeCondition(obj, catalogv1.ReconcilingCondition)
	removeCondition(obj, catalogv1.StalledCondition)
	setCondition(obj, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason, message)
}

// conditionChanged reports whether a condition's status or reason differs
// between two condition lists.
func conditionChanged(before, after []metav1.Condition, typ string) bool {
	a, b := meta.FindStatusCondition(before, typ), meta.FindStatusCondition(after, typ)
	switch {
	case a == nil && b == nil:
		return false
	case a == nil || b == nil:
		return true
	default:
		return a.Status != b.Status || a.Reason != b.Reason
	}
}

// keepTransitionTimes gives each condition of after whose status equals
// the same condition's in before the transition time it had there, so that
// an unchanged status never moves its lastTransitionTime.
func keepTransitionTimes(before, after []metav1.Condition) {
	for i := range after {
		if b := meta.FindStatusCondition(before, after[i].Type); b != nil && b.Status == after[i].Status {
			after[i].LastTransitionTime = b.LastTransitionTime
		}
	}
}
