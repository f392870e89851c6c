package controllers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

var (
	oldTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// recent is a creation time well within any maxAge used here.
	recent = time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
)

// expectCondition waits until a condition has the given status and reason.
func expectCondition(t *testing.T, key client.ObjectKey, typ string, st metav1.ConditionStatus, reason string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		c := condition(g, key, typ)
		g.Expect(c).NotTo(BeNil(), "no %s condition", typ)
		g.Expect(c.Status).To(Equal(st), "%s: %s", typ, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "%s: %s", typ, c.Message)
	}, timeout, tick).Should(Succeed())
}

func dockerConfigSecret(ns, name, host, user, pass string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": auth}}})
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}
}

func TestBasicAuthRegistryNeedsThePullSecret(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t, registrytest.WithBasicAuth("alice", "s3cret"))
	ref := reg.Host + "/base/alpine:3.22"
	d := pushImage(t, ref, recent, "v1", remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})

	// Without credentials the registry refuses.
	key := createBaseImage(t, ns, "alpine", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.AuthenticationFailedReason)
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionFalse, catalogv1.AuthenticationFailedReason)

	// A pull secret that names a missing Secret says so.
	bi := getBaseImage(NewWithT(t), key)
	patch := client.MergeFrom(bi.DeepCopy())
	bi.Spec.PullSecretRef = &catalogv1.LocalObjectReference{Name: "creds"}
	NewWithT(t).Expect(k8sClient.Patch(ctx, bi, patch)).To(Succeed())
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PullSecretNotFoundReason)

	// Creating the Secret is enough: the entry recovers by itself.
	NewWithT(t).Expect(k8sClient.Create(ctx, dockerConfigSecret(ns, "creds", reg.Host, "alice", "s3cret"))).To(Succeed())
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	NewWithT(t).Expect(getBaseImage(NewWithT(t), key).Status.ResolvedDigest).To(Equal(d))
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)

	// The ServiceAccount route works as for a Pod.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "creds"}}}
	NewWithT(t).Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	saKey := createBaseImage(t, ns, "alpine-sa", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref),
		PolicyRef: catalogv1.LocalObjectReference{Name: "p"}, ServiceAccountName: "builder"})
	expectCondition(t, saKey, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)

	// A malformed Secret is reported without its content, and the last
	// digest is kept.
	var s corev1.Secret
	NewWithT(t).Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "creds"}, &s)).To(Succeed())
	s.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths": {"` + reg.Host + `": {"auth": "s3cret-not-base64!"}}}`)
	NewWithT(t).Expect(k8sClient.Update(ctx, &s)).To(Succeed())
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PullSecretInvalidReason)
	got := getBaseImage(NewWithT(t), key)
	NewWithT(t).Expect(got.Status.ResolvedDigest).To(Equal(d))
	NewWithT(t).Expect(got.Status.ApprovedDigest).To(Equal(d))
	for _, c := range got.Status.Conditions {
		NewWithT(t).Expect(c.Message).NotTo(ContainSubstring("s3cret"))
	}

	// Deleting the Secret is reported too; the digest stays.
	NewWithT(t).Expect(k8sClient.Delete(ctx, &s)).To(Succeed())
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PullSecretNotFoundReason)
	NewWithT(t).Expect(getBaseImage(NewWithT(t), key).Status.ResolvedDigest).To(Equal(d))
}

func TestNewDigestOnTheTagIsFollowedAndAPinIsNot(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/python:3.13"
	d1 := pushImage(t, ref, recent, "v1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "python", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	pinKey := createBaseImage(t, ns, "python-pinned", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(reg.Host + "/base/python"),
		Digest: catalogv1.Digest(d1), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	expectCondition(t, pinKey, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)

	first := getBaseImage(g, key)
	g.Expect(first.Status.ResolvedDigest).To(Equal(d1))
	g.Expect(first.Status.ApprovedDigest).To(Equal(d1))
	g.Expect(first.Status.Platforms).To(Equal([]string{"linux/amd64"}))
	g.Expect(first.Status.ImageCreated.Time.Equal(recent)).To(BeTrue())
	g.Expect(first.Status.History).To(HaveLen(1))
	g.Expect(first.Status.History[0].Digest).To(Equal(d1))
	g.Expect(first.Status.History[0].ApprovedAt).NotTo(BeNil())

	d2 := pushImage(t, ref, recent, "v2")
	g.Expect(d2).NotTo(Equal(d1))
	requestReconcile(t, key)
	requestReconcile(t, pinKey)
	g.Eventually(func(g Gomega) {
		bi := getBaseImage(g, key)
		g.Expect(bi.Status.ResolvedDigest).To(Equal(d2))
		g.Expect(bi.Status.ApprovedDigest).To(Equal(d2))
		g.Expect(bi.Status.History).To(HaveLen(2))
		g.Expect(bi.Status.History[0].Digest).To(Equal(d2))
		g.Expect(bi.Status.History[0].SupersededAt).To(BeNil())
		g.Expect(bi.Status.History[1].Digest).To(Equal(d1))
		g.Expect(bi.Status.History[1].SupersededAt).NotTo(BeNil())
		g.Expect(bi.Status.History[1].FirstSeen).To(Equal(first.Status.History[0].FirstSeen))
	}, timeout, tick).Should(Succeed())

	// The pin was reconciled (its request annotation handled) and did not
	// move.
	g.Eventually(func(g Gomega) {
		bi := getBaseImage(g, pinKey)
		g.Expect(bi.Status.LastHandledReconcileAt).To(Equal(bi.Annotations[catalogv1.ReconcileRequestAnnotation]))
		g.Expect(bi.Status.ResolvedDigest).To(Equal(d1))
		g.Expect(bi.Status.History).To(HaveLen(1))
	}, timeout, tick).Should(Succeed())

	// One NewDigest event per digest: a reconcile that changes nothing adds
	// none.
	countEvents := func(g Gomega, reason string) int {
		var list eventsv1.EventList
		g.Expect(apiReader.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
		n := 0
		for _, e := range list.Items {
			if e.Regarding.Name == key.Name && e.Reason == reason {
				n++
			}
		}
		return n
	}
	g.Eventually(func(g Gomega) int { return countEvents(g, "NewDigest") }, timeout, tick).Should(Equal(2))
	requestReconcile(t, key)
	g.Eventually(func(g Gomega) string {
		bi := getBaseImage(g, key)
		return bi.Status.LastHandledReconcileAt
	}, timeout, tick).Should(Equal(getBaseImage(g, key).Annotations[catalogv1.ReconcileRequestAnnotation]))
	g.Consistently(func(g Gomega) int { return countEvents(g, "NewDigest") }, 2*time.Second, tick).Should(Equal(2))

	// The history keeps the last ten digests.
	for i := 3; i <= 13; i++ {
		pushImage(t, ref, recent, fmt.Sprintf("v%d", i))
		requestReconcile(t, key)
		want := i
		g.Eventually(func(g Gomega) int {
			return len(getBaseImage(g, key).Status.History)
		}, timeout, tick).Should(Equal(min(want, catalogv1.MaxHistory)))
	}
}

func TestStaleByAgeAndByUpstream(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	createPolicy(t, ns, "monthly", catalogv1.ImagePolicySpec{MaxAge: duration(720 * time.Hour)})

	// Older than maxAge.
	oldRef := reg.Host + "/base/old:1"
	pushImage(t, oldRef, oldTime, "old")
	oldKey := createBaseImage(t, ns, "old", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(oldRef), PolicyRef: catalogv1.LocalObjectReference{Name: "monthly"}})
	expectCondition(t, oldKey, catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.MaxAgeExceededReason)
	// Stale is a reason to rebuild, not to stop using the image.
	expectCondition(t, oldKey, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, oldKey).Status.ImageCreated.Time.Equal(oldTime)).To(BeTrue())

	// Built from an upstream that later moves.
	upRef := reg.Host + "/upstream/debian:bookworm-slim"
	u1 := pushImage(t, upRef, recent, "debian-1")
	baseRef := reg.Host + "/base/debian:12"
	pushImage(t, baseRef, recent, "base-1")
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(baseRef), Upstream: catalogv1.ImageReference(upRef),
		PolicyRef: catalogv1.LocalObjectReference{Name: "monthly"}})
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)
	g.Expect(getBaseImage(g, key).Status.UpstreamDigest).To(Equal(u1))

	u2 := pushImage(t, upRef, recent, "debian-2")
	requestReconcile(t, key)
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.UpstreamUpdatedReason)
	g.Expect(getBaseImage(g, key).Status.UpstreamDigest).To(Equal(u2))

	// A rebuild on the new upstream clears it.
	pushImage(t, baseRef, recent, "base-2")
	requestReconcile(t, key)
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)

	// The base-image annotation, when present, says what the image was
	// built from, whatever plinth saw.
	annotatedRef := reg.Host + "/base/annotated:1"
	img, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Files: map[string]string{"a": "b"},
		Annotations: map[string]string{"org.opencontainers.image.base.digest": u1, "org.opencontainers.image.base.name": upRef}})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = imagetest.PushImage(context.Background(), annotatedRef, img)
	g.Expect(err).NotTo(HaveOccurred())
	aKey := createBaseImage(t, ns, "annotated", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(annotatedRef), Upstream: catalogv1.ImageReference(upRef),
		PolicyRef: catalogv1.LocalObjectReference{Name: "monthly"}})
	expectCondition(t, aKey, catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.UpstreamUpdatedReason)
	g.Expect(getBaseImage(g, aKey).Status.BaseDigest).To(Equal(u1))
}

func TestKstatusReadsTheConditions(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/alpine:3.22"
	pushImage(t, ref, recent, "v1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	ready := createBaseImage(t, ns, "ready", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	stalled := createBaseImage(t, ns, "stalled", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "missing"}})

	compute := func(g Gomega, key client.ObjectKey) status.Status {
		bi := getBaseImage(g, key)
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(bi)
		g.Expect(err).NotTo(HaveOccurred())
		res, err := status.Compute(&unstructured.Unstructured{Object: obj})
		g.Expect(err).NotTo(HaveOccurred())
		return res.Status
	}
	g.Eventually(func(g Gomega) status.Status { return compute(g, ready) }, timeout, tick).Should(Equal(status.CurrentStatus))
	g.Eventually(func(g Gomega) status.Status { return compute(g, stalled) }, timeout, tick).Should(Equal(status.FailedStatus))
	expectCondition(t, stalled, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PolicyNotFoundReason)

	// The missing policy appears: the entry recovers by itself.
	createPolicy(t, ns, "missing", catalogv1.ImagePolicySpec{})
	g.Eventually(func(g Gomega) status.Status { return compute(g, stalled) }, timeout, tick).Should(Equal(status.CurrentStatus))
	g.Expect(condition(g, stalled, catalogv1.StalledCondition)).To(BeNil())
}

func TestRegistryOutsideThePolicyIsNeverContacted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/alpine:3.22"
	d := pushImage(t, ref, recent, "v1")
	reg.ResetCounts()
	pol := createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{AllowedRegistries: []string{"registry.example.com", "*.corp.example"}})
	key := createBaseImage(t, ns, "alpine", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.UnapprovedRegistryReason)
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PolicyDeniedReason)
	g.Expect(reg.Requests()).To(BeZero())

	// Allowing the repository re-evaluates the entry.
	patch := client.MergeFrom(pol.DeepCopy())
	pol.Spec.AllowedRegistries = append(pol.Spec.AllowedRegistries, reg.Host+"/base/*")
	g.Expect(k8sClient.Patch(ctx, pol, patch)).To(Succeed())
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d))

	// A policy with a malformed glob is not Ready and says why; its entries
	// keep their last verdict.
	patch = client.MergeFrom(pol.DeepCopy())
	pol.Spec.AllowedRegistries = append(pol.Spec.AllowedRegistries, "[")
	g.Expect(k8sClient.Patch(ctx, pol, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var p catalogv1.ImagePolicy
		g.Expect(apiReader.Get(ctx, client.ObjectKeyFromObject(pol), &p)).To(Succeed())
		g.Expect(p.Status.Conditions).To(ContainElement(And(
			HaveField("Type", catalogv1.ReadyCondition), HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", catalogv1.InvalidSpecReason), HaveField("Message", ContainSubstring(`"["`)))))
	}, timeout, tick).Should(Succeed())
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PolicyNotReadyReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d))
}

func TestRegistryFailuresKeepTheLastDigest(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/alpine:3.22"
	d := pushImage(t, ref, recent, "v1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "alpine", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)

	keptDigest := func(g Gomega) {
		bi := getBaseImage(g, key)
		g.Expect(bi.Status.ResolvedDigest).To(Equal(d))
		g.Expect(bi.Status.ApprovedDigest).To(Equal(d))
		g.Expect(apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ApprovedCondition)).To(HaveField("Status", metav1.ConditionTrue))
	}

	// A server error is retried with backoff, not in a hot loop.
	manifests := "/v2/base/alpine/manifests/"
	reg.FailWith(manifests, 500, -1)
	reg.ResetCounts()
	requestReconcile(t, key)
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionFalse, catalogv1.RegistryUnavailableReason)
	expectCondition(t, key, catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingWithRetryReason)
	keptDigest(g)
	// Backoff, not a hot loop: reconciles and requests over a window stay
	// few (exponential backoff from 5ms gives about 10 in 3s).
	reconciles := reconcileCount(g)
	g.Consistently(func(g Gomega) float64 { return reconcileCount(g) - reconciles }, 3*time.Second, tick).Should(BeNumerically("<", 15))
	g.Expect(reg.TotalManifestRequests()).To(BeNumerically("<", 40), "requests in 3s of failures")
	reg.ClearFaults()
	requestReconcile(t, key)
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(condition(g, key, catalogv1.ReconcilingCondition)).To(BeNil())

	for _, tc := range []struct {
		status int
		reason string
	}{
		{404, catalogv1.ImageNotFoundReason},
		{403, catalogv1.AuthenticationFailedReason},
		{401, catalogv1.AuthenticationFailedReason},
	} {
		reg.FailWith(manifests, tc.status, -1)
		requestReconcile(t, key)
		expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, tc.reason)
		keptDigest(g)
		reg.ClearFaults()
		requestReconcile(t, key)
		expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	}
}

func TestIndexPlatformsSkipAttestations(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	amd, err := imagetest.Image(imagetest.ImageOptions{Created: recent, OS: "linux", Architecture: "amd64", Files: map[string]string{"a": "amd64"}})
	g.Expect(err).NotTo(HaveOccurred())
	arm, err := imagetest.Image(imagetest.ImageOptions{Created: oldTime, OS: "linux", Architecture: "arm64", Variant: "v8", Files: map[string]string{"a": "arm64"}})
	g.Expect(err).NotTo(HaveOccurred())
	idx, err := imagetest.Index([]v1.Image{amd, arm}, true)
	g.Expect(err).NotTo(HaveOccurred())
	ref := reg.Host + "/base/multi:1"
	d, err := imagetest.PushIndex(context.Background(), ref, idx)
	g.Expect(err).NotTo(HaveOccurred())
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})

	all := createBaseImage(t, ns, "all", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	amdOnly := createBaseImage(t, ns, "amd", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		Platforms: []catalogv1.Platform{"linux/amd64"}})
	missing := createBaseImage(t, ns, "s390x", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		Platforms: []catalogv1.Platform{"linux/s390x"}})
	expectCondition(t, all, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	expectCondition(t, amdOnly, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	a := getBaseImage(g, all)
	g.Expect(a.Status.ResolvedDigest).To(Equal(d))
	g.Expect(a.Status.Platforms).To(Equal([]string{"linux/amd64", "linux/arm64"}))
	g.Expect(a.Status.ImageCreated.Time.Equal(oldTime)).To(BeTrue(), "oldest platform's creation time")
	b := getBaseImage(g, amdOnly)
	g.Expect(b.Status.Platforms).To(Equal([]string{"linux/amd64"}))
	g.Expect(b.Status.ImageCreated.Time.Equal(recent)).To(BeTrue())
	expectCondition(t, missing, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.ImageNotFoundReason)
	g.Expect(condition(g, missing, catalogv1.StalledCondition).Message).To(ContainSubstring("linux/arm64"))
}
