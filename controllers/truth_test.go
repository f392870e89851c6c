package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// patchSpec changes a BaseImage's spec as a user would.
func patchSpec(t *testing.T, key client.ObjectKey, change func(*catalogv1.BaseImageSpec)) {
	t.Helper()
	g := NewWithT(t)
	var bi catalogv1.BaseImage
	g.Expect(k8sClient.Get(context.Background(), key, &bi)).To(Succeed())
	patch := client.MergeFrom(bi.DeepCopy())
	change(&bi.Spec)
	g.Expect(k8sClient.Patch(context.Background(), &bi, patch)).To(Succeed())
}

// reconciled asks for a reconcile and waits until it provably happened:
// status records the request as handled.
func reconciled(t *testing.T, key client.ObjectKey) *catalogv1.BaseImage {
	t.Helper()
	requestReconcile(t, key)
	want := getBaseImage(NewWithT(t), key).Annotations[catalogv1.ReconcileRequestAnnotation]
	var bi *catalogv1.BaseImage
	NewWithT(t).Eventually(func(g Gomega) string {
		bi = getBaseImage(g, key)
		return bi.Status.LastHandledReconcileAt
	}, timeout, tick).Should(Equal(want))
	return bi
}

// kstatusOf computes what GitOps tools read from the entry.
func kstatusOf(g Gomega, key client.ObjectKey) status.Status {
	bi := getBaseImage(g, key)
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(bi)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// eventReasons lists the reasons of the events about one BaseImage.
func eventReasons(g Gomega, key client.ObjectKey) []string {
	var list eventsv1.EventList
	g.Expect(apiReader.List(context.Background(), &list, client.InNamespace(key.Namespace))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == key.Name && e.Regarding.Kind == catalogv1.BaseImageKind {
			out = append(out, e.Reason)
		}
	}
	return out
}

// reconcileCount reads controller-runtime's count of BaseImage reconciles.
func reconcileCount(g Gomega) float64 {
	mfs, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "baseimage" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

func TestSuspendIsVisibleAndResumeReconcilesAtOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/alpine:3.22"
	d1 := pushImage(t, ref, recent, "v1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "alpine", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)

	patchSpec(t, key, func(s *catalogv1.BaseImageSpec) { s.Suspend = true })
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionFalse, catalogv1.SuspendedReason)
	g.Eventually(func(g Gomega) {
		bi := getBaseImage(g, key)
		g.Expect(bi.Status.ObservedGeneration).To(Equal(bi.Generation))
	}, timeout, tick).Should(Succeed())
	// Not in progress for ever: someone must resume it.
	g.Expect(kstatusOf(g, key)).To(Equal(status.FailedStatus))
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.SuspendedReason)

	// While suspended, a new digest is not followed; the verdict stays.
	d2 := pushImage(t, ref, recent, "v2")
	bi := reconciled(t, key)
	g.Expect(bi.Status.ResolvedDigest).To(Equal(d1))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(d1))

	// Resuming acts at once.
	patchSpec(t, key, func(s *catalogv1.BaseImageSpec) { s.Suspend = false })
	g.Eventually(func(g Gomega) string { return getBaseImage(g, key).Status.ResolvedDigest }, timeout, tick).Should(Equal(d2))
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
}

func TestAPlatformChangeFollowedByARegistryErrorIsInspectedOnTheRetry(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	amd, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Architecture: "amd64", Files: map[string]string{"a": "amd64"}})
	g.Expect(err).NotTo(HaveOccurred())
	arm, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Architecture: "arm64", Files: map[string]string{"a": "arm64"}})
	g.Expect(err).NotTo(HaveOccurred())
	idx, err := imagetest.Index([]v1.Image{amd, arm}, false)
	g.Expect(err).NotTo(HaveOccurred())
	ref := reg.Host + "/base/multi:1"
	_, err = imagetest.PushIndex(context.Background(), ref, idx)
	g.Expect(err).NotTo(HaveOccurred())
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "multi", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref),
		PolicyRef: catalogv1.LocalObjectReference{Name: "p"}, Platforms: []catalogv1.Platform{"linux/amd64"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.Platforms).To(Equal([]string{"linux/amd64"}))

	// The registry fails the index (not the tag's HEAD) while the spec
	// changes: the change is not marked observed.
	reg.FailWith("/v2/base/multi/manifests/sha256:", 500, -1)
	patchSpec(t, key, func(s *catalogv1.BaseImageSpec) { s.Platforms = []catalogv1.Platform{"linux/arm64"} })
	expectCondition(t, key, catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingWithRetryReason)
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.ObservedGeneration).To(BeNumerically("<", bi.Generation))
	g.Expect(kstatusOf(g, key)).To(Equal(status.InProgressStatus))

	reg.ClearFaults()
	g.Eventually(func(g Gomega) {
		bi := getBaseImage(g, key)
		g.Expect(bi.Status.Platforms).To(Equal([]string{"linux/arm64"}))
		g.Expect(bi.Status.ObservedGeneration).To(Equal(bi.Generation))
	}, timeout, tick).Should(Succeed())
}

func TestAnImageRebuiltOnANewUpstreamBetweenPollsIsNotStale(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	upRef := reg.Host + "/upstream/debian:bookworm-slim"
	baseRef := reg.Host + "/base/debian:12"
	pushImage(t, upRef, recent, "debian-1")
	pushImage(t, baseRef, recent, "base-1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(baseRef),
		Upstream: catalogv1.ImageReference(upRef), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)

	// Between two polls the upstream moves and the base is rebuilt on it.
	u2 := pushImage(t, upRef, recent, "debian-2")
	b2 := pushImage(t, baseRef, recent, "base-2")
	bi := reconciled(t, key)
	g.Expect(bi.Status.ResolvedDigest).To(Equal(b2))
	g.Expect(bi.Status.History[0].UpstreamDigest).To(Equal(u2))
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)
	g.Expect(eventReasons(g, key)).NotTo(ContainElement(catalogv1.UpstreamUpdatedReason))
}

func TestReproducibleBuildImagesHaveNoAge(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/distroless:nonroot"
	pushImage(t, ref, time.Unix(0, 0), "distroless")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{MaxAge: duration(720 * time.Hour)})
	key := createBaseImage(t, ns, "distroless", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	// Age counts from when plinth first saw the digest: not 56 years.
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)
	g.Expect(getBaseImage(g, key).Status.ImageCreated).To(BeNil())
}

func TestTheUpstreamObeysThePolicyAndNeverStopsTheVerdict(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	upRef := reg.Host + "/upstream/debian:bookworm-slim"
	baseRef := reg.Host + "/base/debian:12"
	pushImage(t, upRef, recent, "debian-1")
	pushImage(t, baseRef, recent, "base-1")
	pol := createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{AllowedRegistries: []string{reg.Host + "/base/*"}})
	reg.ResetCounts()
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(baseRef),
		Upstream: catalogv1.ImageReference(upRef), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})

	// The upstream's repository is not allowed: it is never read, and the
	// image is judged all the same.
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionUnknown, catalogv1.UpstreamNotAllowedReason)
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(reg.ManifestRequests("upstream/debian")).To(BeZero())

	// A separate list for upstreams allows it.
	patch := client.MergeFrom(pol.DeepCopy())
	pol.Spec.AllowedUpstreamRegistries = []string{reg.Host + "/upstream/*"}
	g.Expect(k8sClient.Patch(context.Background(), pol, patch)).To(Succeed())
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)

	// An upstream that cannot be read leaves Stale unknown; the image's own
	// verdict stands.
	reg.FailWith("/v2/upstream/debian/manifests/", 404, -1)
	reconciled(t, key)
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionUnknown, catalogv1.UpstreamUnavailableReason)
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(condition(g, key, catalogv1.StalledCondition)).To(BeNil())
	g.Expect(getBaseImage(g, key).Status.UpstreamDigest).To(BeEmpty())
}

func TestAPrivateCAIsTrustedPerEntryAndATLSFailureStalls(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t, registrytest.WithTLS())
	ref := reg.Host + "/base/alpine:3.22"
	d := pushImage(t, ref, recent, "v1", remote.WithTransport(reg.Transport()))
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})

	// Without the CA, verification fails: someone must act, so the entry
	// is Stalled and retried at the policy's interval, not in a loop.
	key := createBaseImage(t, ns, "alpine", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.TLSVerificationFailedReason)
	msg := condition(g, key, catalogv1.StalledCondition).Message
	g.Expect(msg).To(ContainSubstring("TLS"))
	g.Expect(msg).NotTo(ContainSubstring("https://"))
	g.Expect(msg).NotTo(ContainSubstring(reg.Host))
	before := reconcileCount(g)
	g.Consistently(func(g Gomega) float64 { return reconcileCount(g) - before }, 3*time.Second, tick).Should(BeNumerically("<=", 2))

	// A Secret that is missing, then one without a certificate, say so.
	patchSpec(t, key, func(s *catalogv1.BaseImageSpec) {
		s.CertSecretRef = &catalogv1.LocalObjectReference{Name: "registry-ca"}
	})
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.CertSecretInvalidReason)
	ca := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry-ca"}, Data: map[string][]byte{"ca.crt": []byte("not a certificate")}}
	g.Expect(k8sClient.Create(ctx, ca)).To(Succeed())
	g.Eventually(func(g Gomega) string { return condition(g, key, catalogv1.StalledCondition).Message }, timeout, tick).
		Should(ContainSubstring("holds no PEM certificate"))

	// The CA bundle is enough; the Secret's change is watched.
	ca.Data["ca.crt"] = reg.CAPEM()
	g.Expect(k8sClient.Update(ctx, ca)).To(Succeed())
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.ResolvedDigest).To(Equal(d))
}

func TestASecretEventReconcilesOnlyTheEntriesThatUseIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/alpine:3.22"
	pushImage(t, ref, recent, "v1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	g.Expect(k8sClient.Create(ctx, dockerConfigSecret(ns, "creds", reg.Host, "u", "p"))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "creds"}}})).To(Succeed())
	var keys []client.ObjectKey
	for i := range 5 {
		keys = append(keys, createBaseImage(t, ns, fmt.Sprintf("sa-%d", i), catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref),
			PolicyRef: catalogv1.LocalObjectReference{Name: "p"}, ServiceAccountName: "builder"}))
	}
	for _, k := range keys {
		expectCondition(t, k, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	}
	settled := func() float64 {
		var n float64
		g.Eventually(func(g Gomega) bool {
			a := reconcileCount(g)
			time.Sleep(2 * time.Second)
			n = reconcileCount(g)
			return a == n
		}, timeout, tick).Should(BeTrue())
		return n
	}

	// Secrets nobody names cost no reconcile.
	before := settled()
	for i := range 10 {
		g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("unrelated-%d", i)},
			StringData: map[string]string{"k": "v"}})).To(Succeed())
	}
	g.Consistently(func(g Gomega) float64 { return reconcileCount(g) - before }, 2*time.Second, tick).Should(BeZero())

	// The Secret the ServiceAccount names reaches every entry using it.
	var s corev1.Secret
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "creds"}, &s)).To(Succeed())
	s.Labels = map[string]string{"rotated": "yes"}
	g.Expect(k8sClient.Update(ctx, &s)).To(Succeed())
	g.Eventually(func(g Gomega) float64 { return reconcileCount(g) - before }, timeout, tick).Should(BeNumerically(">=", len(keys)))
}

func TestARefusalIsOneEventNotOnePerCondition(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/alpine:3.22"
	pushImage(t, ref, recent, "v1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{AllowedRegistries: []string{"registry.example.com"}})
	key := createBaseImage(t, ns, "alpine", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PolicyDeniedReason)
	reconciled(t, key)
	g.Eventually(func(g Gomega) []string { return eventReasons(g, key) }, timeout, tick).Should(ContainElement(catalogv1.UnapprovedRegistryReason))
	g.Consistently(func(g Gomega) []string { return eventReasons(g, key) }, 2*time.Second, tick).
		Should(Equal([]string{catalogv1.UnapprovedRegistryReason}))
}

func TestAnotherRepositoryStartsTheHistoryAfresh(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	d1 := pushImage(t, reg.Host+"/base/python:3.12", recent, "py312")
	d2 := pushImage(t, reg.Host+"/other/python:3.12", recent, "other")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "python", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(reg.Host + "/base/python:3.12"),
		PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d1))

	patchSpec(t, key, func(s *catalogv1.BaseImageSpec) { s.Image = catalogv1.ImageReference(reg.Host + "/other/python:3.12") })
	g.Eventually(func(g Gomega) {
		bi := getBaseImage(g, key)
		g.Expect(bi.Status.Repository).To(Equal(reg.Host + "/other/python"))
		g.Expect(bi.Status.ResolvedDigest).To(Equal(d2))
		g.Expect(bi.Status.ApprovedDigest).To(Equal(d2))
		g.Expect(bi.Status.History).To(HaveLen(1))
		g.Expect(bi.Status.History[0].Digest).To(Equal(d2))
	}, timeout, tick).Should(Succeed())
}

// Condition and event messages never carry a registry URL.
func TestMessagesCarryNoURL(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/missing:1"
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "missing", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.ImageNotFoundReason)
	for _, c := range getBaseImage(g, key).Status.Conditions {
		g.Expect(strings.Contains(c.Message, "http://") || strings.Contains(c.Message, "https://")).To(BeFalse(), c.Message)
	}
}

// With scanning off, no vulnerability figure stands beside the verdict, not
// even one left by an earlier run with scanning on.
func TestWithoutScanningNoVulnerabilityFiguresRemain(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/alpine:3.22"
	d := pushImage(t, ref, recent, "v1")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "alpine", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)

	// What a run with scanning on left behind.
	bi := getBaseImage(g, key)
	patch := client.MergeFrom(bi.DeepCopy())
	bi.Status.ScannedDigest, bi.Status.VulnDBVersion = d, "2026-11-01T00:00:00Z+000000000000"
	bi.Status.LastScanTime = &metav1.Time{Time: recent}
	bi.Status.Vulnerabilities = &catalogv1.VulnerabilitySummary{Critical: catalogv1.SeverityCount{Total: 2, Fixable: 1}}
	bi.Status.TopFindings = []catalogv1.Finding{{ID: "CVE-2026-0001", Severity: catalogv1.SeverityCritical, Package: "musl", FirstSeen: metav1.Time{Time: recent}}}
	setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionTrue, catalogv1.ScanSucceededReason, "Scanned")
	g.Expect(k8sClient.Status().Patch(ctx, bi, patch)).To(Succeed())

	bi = reconciled(t, key)
	g.Expect(bi.Status.Vulnerabilities).To(BeNil())
	g.Expect(bi.Status.TopFindings).To(BeEmpty())
	g.Expect(bi.Status.ScannedDigest).To(BeEmpty())
	g.Expect(bi.Status.VulnDBVersion).To(BeEmpty())
	g.Expect(condition(g, key, catalogv1.ScannedCondition)).To(BeNil())
}

// A policy that the reconciler's cache has not seen yet, created a moment
// before the entry (both applied together), exists: the reconciler asks the
// API server before it says PolicyNotFound. A policy that really is missing
// is still reported missing.
func TestAPolicyTheCacheHasNotSeenIsNotCalledMissing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	// The cache lags: it has seen no ImagePolicy.
	lagging := interceptor.NewClient(withoutWatch{k8sClient}, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*catalogv1.ImagePolicy); ok {
				return apierrors.NewNotFound(catalogv1.GroupVersion.WithResource("imagepolicies").GroupResource(), key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	r := &BaseImageReconciler{Client: lagging, APIReader: apiReader}
	entry := func(policy string) *scope {
		return &scope{bi: &catalogv1.BaseImage{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alpine"},
			Spec: catalogv1.BaseImageSpec{Image: "registry.example.com/base/alpine:3.22",
				PolicyRef: catalogv1.LocalObjectReference{Name: policy}},
		}}
	}

	s := entry("p")
	r.checkPolicy(context.Background(), s)
	g.Expect(s.stop).To(BeNil())
	g.Expect(s.policy).NotTo(BeNil())
	g.Expect(s.policy.Name).To(Equal("p"))

	s = entry("missing")
	r.checkPolicy(context.Background(), s)
	g.Expect(s.stop).NotTo(BeNil())
	g.Expect(s.stop.reason).To(Equal(catalogv1.PolicyNotFoundReason))
}
