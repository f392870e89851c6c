package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/rebuild"
)

// Delivery of a notification is retried with backoff from
// notificationBackoff, doubling, up to maxNotificationBackoff, and given up
// after maxNotificationAttempts rounds.
const (
	notificationBackoff     = 30 * time.Second
	maxNotificationBackoff  = time.Hour
	maxNotificationAttempts = 10
)

// notify is the last step: it records the transitions the policy's
// notification targets are told of, and delivers those still pending.
// A transition is found by comparing status with what was stored before
// this reconcile, so it is found once; it is recorded in status together
// with the verdict, so a restart neither loses nor repeats it. A delivery
// repeated because a status patch was refused carries the same id.
func (r *BaseImageReconciler) notify(ctx context.Context, s *scope) {
	bi := s.bi
	st := &bi.Status
	targets := s.policy.Spec.Notifications
	if len(targets) == 0 {
		// Nothing to tell: what was pending has nowhere to go.
		st.Notifications = nil
		return
	}
	added := false
	for _, rec := range r.transitions(s) {
		if slices.ContainsFunc(st.Notifications, func(n catalogv1.NotificationRecord) bool { return n.ID == rec.ID }) {
			continue
		}
		for _, t := range targets {
			if t.Wants(rec.Event) {
				rec.Pending = append(rec.Pending, t.Name)
			}
		}
		if len(rec.Pending) == 0 {
			continue
		}
		if rec.Event == catalogv1.NotificationExceptionExpiring {
			// The other transitions have their events already.
			r.event(bi, corev1.EventTypeWarning, catalogv1.ExceptionExpiringReason, "Notify", rec.Message)
		}
		st.Notifications = append(st.Notifications, rec)
		added = true
	}
	st.Notifications = pruneNotifications(st.Notifications)
	if added {
		// Recorded before they are sent: a reconcile that cannot write
		// status sends nothing, so a retried reconcile does not deliver
		// twice, and a restart delivers what is pending.
		if err := s.persist(ctx); err != nil {
			s.retryErr = err
			return
		}
	}
	for i := range st.Notifications {
		r.deliverNotification(ctx, s, &st.Notifications[i])
	}
	st.Notifications = pruneNotifications(st.Notifications)
}

// transitions lists the transitions of this reconcile that notifications
// tell of, each with a stable id.
func (r *BaseImageReconciler) transitions(s *scope) []catalogv1.NotificationRecord {
	bi := s.bi
	st := &bi.Status
	uid := string(bi.UID)
	var out []catalogv1.NotificationRecord
	add := func(event catalogv1.NotificationEvent, idFields []string, reason, msg, digest string, deadline *metav1.Time) {
		out = append(out, catalogv1.NotificationRecord{
			ID:    triggerID(append([]string{uid, string(event)}, idFields...)...),
			Event: event, Reason: reason, Message: truncateMessage(msg), Digest: digest, Deadline: deadline,
			Time: metav1.Time{Time: s.now},
		})
	}
	before := s.before.Conditions
	if old := apimeta.FindStatusCondition(before, catalogv1.ApprovedCondition); old != nil && old.Status == metav1.ConditionTrue {
		if c := apimeta.FindStatusCondition(st.Conditions, catalogv1.ApprovedCondition); c != nil && c.Status == metav1.ConditionFalse {
			add(catalogv1.NotificationApprovalLost, []string{old.LastTransitionTime.UTC().Format(time.RFC3339), s.digest, c.Reason},
				c.Reason, c.Message, s.digest, nil)
		}
	}
	if c := apimeta.FindStatusCondition(st.Conditions, catalogv1.StaleCondition); c != nil && c.Status == metav1.ConditionTrue &&
		!apimeta.IsStatusConditionTrue(before, catalogv1.StaleCondition) {
		since := ""
		if old := apimeta.FindStatusCondition(before, catalogv1.StaleCondition); old != nil {
			since = old.LastTransitionTime.UTC().Format(time.RFC3339)
		}
		add(catalogv1.NotificationStale, []string{since, s.digest, c.Reason}, c.Reason, c.Message, s.digest, nil)
	}
	if s.revoked != "" && s.before.ApprovedDigest != "" {
		approvedAt := ""
		if a := s.before.Approved; a != nil {
			approvedAt = a.ApprovedAt.UTC().Format(time.RFC3339)
		}
		add(catalogv1.NotificationApprovalRevoked, []string{s.before.ApprovedDigest, approvedAt},
			catalogv1.ApprovalRevokedReason, s.revoked, s.before.ApprovedDigest, nil)
	}
	// Exceptions the approval depends on, expiring within the warning.
	warning := s.policy.Spec.ExceptionExpiryWarningOrDefault()
	for _, j := range []struct {
		v      *policy.Verdict
		digest string
	}{{s.verdict, s.digest}, {s.approvedVerdict, st.ApprovedDigest}} {
		if j.v == nil || !j.v.Approved || j.digest != st.ApprovedDigest {
			continue
		}
		for _, e := range j.v.ExceptionsApplied {
			if e.Expires.IsZero() || !s.now.Before(e.Expires) {
				continue
			}
			if warnAt := e.Expires.Add(-warning); s.now.Before(warnAt) {
				s.wake(warnAt)
				continue
			}
			add(catalogv1.NotificationExceptionExpiring, []string{e.ID, e.Expires.UTC().Format(time.RFC3339)}, e.ID,
				fmt.Sprintf("The exception for %s, on which the approval of %s depends, expires at %s",
					e.ID, j.digest, e.Expires.UTC().Format(time.RFC3339)),
				j.digest, &metav1.Time{Time: e.Expires})
		}
	}
	return out
}

// deliverNotification delivers a recorded transition to the targets still
// pending, when its next attempt is due.
func (r *BaseImageReconciler) deliverNotification(ctx context.Context, s *scope, rec *catalogv1.NotificationRecord) {
	if len(rec.Pending) == 0 {
		return
	}
	if rec.LastAttempt != nil {
		due := rec.LastAttempt.Add(backoffFor(notificationBackoff, maxNotificationBackoff, rec.Attempts))
		if s.now.Before(due) {
			s.wake(due)
			return
		}
	}
	bi := s.bi
	st := &bi.Status
	p := rebuild.Payload{
		ID: rec.ID, Event: string(rec.Event), Reason: rec.Reason, Message: rec.Message,
		Namespace: bi.Namespace, Name: bi.Name, Image: string(bi.Spec.Image), Digest: rec.Digest,
		ApprovedDigest: st.ApprovedDigest, UpstreamDigest: st.UpstreamDigest, Policy: s.policy.Name,
		BlockingCVEs: blockingCVEs(st), Time: rec.Time.Time,
	}
	if rec.Deadline != nil {
		p.Deadline = ptr.To(rec.Deadline.Time)
	}
	var pending, errs []string
	for _, name := range rec.Pending {
		i := slices.IndexFunc(s.policy.Spec.Notifications, func(t catalogv1.NotificationTarget) bool { return t.Name == name })
		if i < 0 {
			// The target was removed from the policy.
			continue
		}
		t := s.policy.Spec.Notifications[i]
		if _, _, err := r.deliver(ctx, bi.Namespace, &t.Webhook, p, metrics.DeliveryNotification); err != nil {
			pending = append(pending, name)
			errs = append(errs, name+": "+err.Error())
		}
	}
	rec.Attempts++
	rec.LastAttempt = &metav1.Time{Time: s.now}
	rec.Pending, rec.LastError = pending, truncateMessage(strings.Join(errs, "; "))
	switch {
	case len(pending) == 0:
	case rec.Attempts >= maxNotificationAttempts:
		rec.Pending = nil
		rec.LastError = truncateMessage(fmt.Sprintf("gave up after %d attempts: %s", rec.Attempts, rec.LastError))
		r.event(bi, corev1.EventTypeWarning, catalogv1.NotificationFailedReason, "Notify",
			fmt.Sprintf("Notification %s (%s) not delivered to %s: %s", rec.ID, rec.Event, strings.Join(pending, ", "), rec.LastError))
	default:
		s.wake(s.now.Add(backoffFor(notificationBackoff, maxNotificationBackoff, rec.Attempts)))
	}
}

// backoffFor is base doubled attempts-1 times, at most limit.
func backoffFor(base, limit time.Duration, attempts int32) time.Duration {
	d := base
	for i := int32(1); i < attempts && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// pruneNotifications keeps at most MaxNotifications records: the pending
// ones, then the newest delivered.
func pruneNotifications(recs []catalogv1.NotificationRecord) []catalogv1.NotificationRecord {
	for len(recs) > catalogv1.MaxNotifications {
		i := slices.IndexFunc(recs, func(n catalogv1.NotificationRecord) bool { return len(n.Pending) == 0 })
		if i < 0 {
			i = 0
		}
		recs = slices.Delete(recs, i, i+1)
	}
	return recs
}
