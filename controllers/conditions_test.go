package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Ready set True and then False again in one reconcile (an approved
// digest whose signing failed) must not look like a new transition, or
// every reconcile would rewrite status.
func TestAConditionFlippedAndBackKeepsItsTransitionTime(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	bi := &catalogv1.BaseImage{}
	bi.Status.Conditions = []metav1.Condition{{Type: catalogv1.ReadyCondition, Status: metav1.ConditionFalse,
		Reason: catalogv1.SigningFailedReason, LastTransitionTime: then}}
	before := bi.DeepCopy()
	markReady(bi, "Approved")
	markStalled(bi, catalogv1.SigningFailedReason, "Cannot sign")
	keepTransitionTimes(before.Status.Conditions, bi.Status.Conditions)
	for _, c := range bi.Status.Conditions {
		if c.Type == catalogv1.ReadyCondition && !c.LastTransitionTime.Equal(&then) {
			t.Errorf("Ready's transition time moved to %v", c.LastTransitionTime)
		}
	}
}
