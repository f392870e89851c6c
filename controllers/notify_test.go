package controllers

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/rebuild"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// eventsOf lists the events of the deliveries a receiver got, in order.
func eventsOf(ds []delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.payload.Event)
	}
	return out
}

func TestNotificationsFireOncePerTransitionAcrossRestarts(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/debian:12"
	created := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	d := pushImage(t, ref, created, "v1")
	recv := newReceiver(t, "n0tify")
	hmacSecret(t, ns, "hook", "n0tify")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{
		MaxAge: duration(30 * 24 * time.Hour),
		Notifications: []catalogv1.NotificationTarget{{
			Name:    "security",
			Webhook: catalogv1.WebhookTarget{URL: recv.URL, SecretRef: catalogv1.LocalObjectReference{Name: "hook"}},
		}},
	})
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(recv.got()).To(BeEmpty(), "a first approval is no transition to tell")

	// The image outgrows maxAge: Stale, told once.
	setClock(t, created.Add(31*24*time.Hour))
	reconciled(t, key)
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.MaxAgeExceededReason)
	g.Eventually(func() []string { return eventsOf(recv.got()) }, timeout, tick).Should(Equal([]string{string(catalogv1.NotificationStale)}))
	first := recv.got()[0]
	g.Expect(first.valid).To(BeTrue())
	g.Expect(first.payload.Digest).To(Equal(d))
	g.Expect(first.payload.Reason).To(Equal(catalogv1.MaxAgeExceededReason))
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.Notifications).To(HaveLen(1))
	g.Expect(bi.Status.Notifications[0].Pending).To(BeEmpty())
	g.Expect(bi.Status.Notifications[0].ID).To(Equal(first.payload.ID))

	for range 5 {
		reconciled(t, key)
	}
	// A new operator process knows only what status says.
	restarted := &BaseImageReconciler{Client: k8sClient, APIReader: apiReader, Registry: regClient, Clock: testClock,
		Webhooks: &rebuild.Sender{Timeout: 2 * time.Second, MaxAttempts: 1}}
	_, err := restarted.Reconcile(ctx, ctrl.Request{NamespacedName: key})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(recv.got()).To(HaveLen(1), "no transition is told twice")

	// The policy stops allowing the registry: the approval is lost and the
	// approved digest revoked, each told once.
	var p catalogv1.ImagePolicy
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "p"}, &p)).To(Succeed())
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.AllowedRegistries = []string{"registry.example.com"}
	g.Expect(k8sClient.Patch(ctx, &p, patch)).To(Succeed())
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.UnapprovedRegistryReason)
	g.Eventually(func() []string { return eventsOf(recv.got()) }, timeout, tick).Should(ConsistOf(
		string(catalogv1.NotificationStale), string(catalogv1.NotificationApprovalLost), string(catalogv1.NotificationApprovalRevoked)))
	for range 3 {
		reconciled(t, key)
	}
	_, err = restarted.Reconcile(ctx, ctrl.Request{NamespacedName: key})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(recv.got()).To(HaveLen(3))
	for _, d := range recv.got() {
		g.Expect(d.valid).To(BeTrue())
	}
}

func TestAFailedNotificationIsRetriedWithBackoffUntilDelivered(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/debian:12"
	created := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	pushImage(t, ref, created, "v1")
	recv := newReceiver(t, "k")
	recv.answer(http.StatusInternalServerError)
	hmacSecret(t, ns, "hook", "k")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{
		MaxAge: duration(30 * 24 * time.Hour),
		Notifications: []catalogv1.NotificationTarget{{
			Name:    "ci",
			Webhook: catalogv1.WebhookTarget{URL: recv.URL, SecretRef: catalogv1.LocalObjectReference{Name: "hook"}},
			Events:  []catalogv1.NotificationEvent{catalogv1.NotificationStale},
		}},
	})
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)

	stale := created.Add(31 * 24 * time.Hour)
	setClock(t, stale)
	reconciled(t, key)
	var rec catalogv1.NotificationRecord
	g.Eventually(func(g Gomega) {
		ns := getBaseImage(g, key).Status.Notifications
		g.Expect(ns).To(HaveLen(1))
		rec = ns[0]
		g.Expect(rec.Attempts).To(Equal(int32(1)))
	}, timeout, tick).Should(Succeed())
	g.Expect(rec.Pending).To(Equal([]string{"ci"}))
	g.Expect(rec.LastError).To(ContainSubstring("500"))
	tries := len(recv.got())

	// Within the backoff nothing is sent.
	reconciled(t, key)
	g.Expect(recv.got()).To(HaveLen(tries))

	// After it, the receiver works again and gets the same delivery.
	recv.answer(http.StatusOK)
	setClock(t, stale.Add(notificationBackoff+time.Second))
	reconciled(t, key)
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.Notifications[0].Pending).To(BeEmpty())
	g.Expect(bi.Status.Notifications[0].LastError).To(BeEmpty())
	got := recv.got()
	g.Expect(len(got)).To(BeNumerically(">", tries))
	for _, d := range got {
		g.Expect(d.payload.ID).To(Equal(rec.ID), "every try carries the same id")
	}
	reconciled(t, key)
	g.Expect(recv.got()).To(HaveLen(len(got)))
}

func TestTimeToPatchIsRecordedWhenAnApprovedDigestReplacesAStaleOne(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/debian:12"
	created := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	d1 := pushImage(t, ref, created, "v1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{MaxAge: duration(30 * 24 * time.Hour)})
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)

	staleAt := created.Add(31 * 24 * time.Hour)
	setClock(t, staleAt)
	reconciled(t, key)
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.MaxAgeExceededReason)
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.History[0].Digest).To(Equal(d1))
	g.Expect(bi.Status.History[0].StaleSince).NotTo(BeNil())
	g.Expect(bi.Status.History[0].StaleSince.Time).To(BeTemporally("==", staleAt))

	patchedAt := staleAt.Add(72 * time.Hour)
	setClock(t, patchedAt)
	d2 := pushImage(t, ref, patchedAt.Add(-time.Hour), "v2")
	reconciled(t, key)
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)
	bi = getBaseImage(g, key)
	g.Expect(bi.Status.ApprovedDigest).To(Equal(d2))
	h := bi.Status.History[0]
	g.Expect(h.Digest).To(Equal(d2))
	g.Expect(h.TimeToPatch).NotTo(BeNil())
	g.Expect(h.TimeToPatch.Duration).To(Equal(72 * time.Hour))
	g.Expect(bi.Status.History[1].StaleSince.Time).To(BeTemporally("==", staleAt), "the stale digest keeps its record")
}

// An exception the approval depends on is announced once, within the
// policy's warning, and the entry wakes up when the warning starts.
func TestExpiringExceptionsAreAnnouncedWithinTheWarning(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	pol := &catalogv1.ImagePolicy{Spec: catalogv1.ImagePolicySpec{
		ExceptionExpiryWarning: duration(48 * time.Hour),
		Notifications:          []catalogv1.NotificationTarget{{Name: "sec"}},
	}}
	verdict := &policy.Verdict{Approved: true, ExceptionsApplied: []policy.AppliedException{
		{ID: "CVE-2026-0001", Expires: now.Add(24 * time.Hour)},
		{ID: "CVE-2026-0002", Expires: now.Add(5 * 24 * time.Hour)},
		{ID: "CVE-2026-0003", Expires: now.Add(-time.Hour)},
	}}
	bi := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{UID: "u1"}}
	bi.Status.ApprovedDigest = "sha256:aa"
	s := &scope{bi: bi, now: now, policy: pol, digest: "sha256:aa", verdict: verdict, before: &catalogv1.BaseImageStatus{}}
	r := &BaseImageReconciler{Clock: clock.RealClock{}}
	recs := r.transitions(s)
	g.Expect(recs).To(HaveLen(1))
	g.Expect(recs[0].Event).To(Equal(catalogv1.NotificationExceptionExpiring))
	g.Expect(recs[0].Reason).To(Equal("CVE-2026-0001"))
	g.Expect(recs[0].Deadline.Time).To(Equal(now.Add(24 * time.Hour)))
	g.Expect(s.wakeAt).To(Equal(now.Add(3*24*time.Hour)), "woken when the second one's warning starts")

	// The same exception later gives the same id: it is told once.
	s2 := &scope{bi: bi, now: now.Add(time.Hour), policy: pol, digest: "sha256:aa", verdict: verdict, before: &catalogv1.BaseImageStatus{}}
	g.Expect(r.transitions(s2)[0].ID).To(Equal(recs[0].ID))

	// A digest that is not the approved one announces nothing.
	bi.Status.ApprovedDigest = "sha256:bb"
	g.Expect(r.transitions(&scope{bi: bi, now: now, policy: pol, digest: "sha256:aa", verdict: verdict, before: &catalogv1.BaseImageStatus{}})).To(BeEmpty())
}
