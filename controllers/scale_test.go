package controllers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

// Cost follows change: once 200 entries are resolved, a round of reconciles
// in which no digest changed writes no status and costs at most one manifest
// request per image at the registry.
func TestUnchangedDigestsCostOneRequestAndNoWrite(t *testing.T) {
	const n = 200
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t)
	img, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Files: map[string]string{"etc/motd": "scale"}})
	g.Expect(err).NotTo(HaveOccurred())
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{MaxAge: duration(720 * 3600e9)})
	keys := make([]client.ObjectKey, 0, n)
	for i := range n {
		ref := fmt.Sprintf("%s/base/image-%03d:1", reg.Host, i)
		_, err := imagetest.PushImage(ctx, ref, img)
		g.Expect(err).NotTo(HaveOccurred())
		keys = append(keys, createBaseImage(t, ns, fmt.Sprintf("image-%03d", i), catalogv1.BaseImageSpec{
			Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}}))
	}

	// First round, by the running operator, until every entry is Ready and
	// no status changes for a while.
	versions := map[string]string{}
	readVersions := func(g Gomega) map[string]string {
		var list catalogv1.BaseImageList
		g.Expect(apiReader.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(n))
		v := map[string]string{}
		for _, bi := range list.Items {
			c := apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ReadyCondition)
			g.Expect(c).NotTo(BeNil(), bi.Name)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), bi.Name)
			v[bi.Name] = bi.ResourceVersion
		}
		return v
	}
	g.Eventually(func(g Gomega) {
		before := readVersions(g)
		time.Sleep(time.Second)
		g.Expect(readVersions(g)).To(Equal(before))
		versions = before
	}, 3*timeout, tick).Should(Succeed())

	// Second round: the same reconciler code and registry client as the
	// operator's, counting writes.
	var writes atomic.Int64
	direct, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	counting := interceptor.NewClient(direct, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			writes.Add(1)
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			writes.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	r := &BaseImageReconciler{Client: counting, APIReader: apiReader, Registry: regClient, Clock: clock.RealClock{}}
	reg.ResetCounts()
	for _, key := range keys {
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.RequeueAfter).To(BeNumerically(">", 0), "requeued at the next deadline")
	}
	g.Expect(writes.Load()).To(BeZero(), "status writes")
	for i := range n {
		g.Expect(reg.ManifestRequests(fmt.Sprintf("base/image-%03d", i))).To(BeNumerically("<=", 1), "manifest requests for image %d", i)
	}
	g.Expect(reg.Requests()).To(BeNumerically("<=", n), "registry requests of any kind")
	t.Logf("second round: %d registry requests, %d manifest requests, %d status writes for %d images",
		reg.Requests(), reg.TotalManifestRequests(), writes.Load(), n)

	var list catalogv1.BaseImageList
	g.Expect(apiReader.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	for _, bi := range list.Items {
		g.Expect(bi.ResourceVersion).To(Equal(versions[bi.Name]), "%s was written", bi.Name)
	}
}

// An image whose config names no platform (crane append, many scratch
// images) costs one manifest HEAD per check once inspected, like any other.
func TestAnImageWithoutPlatformCostsOneRequestWhenUnchanged(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t)
	base, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Files: map[string]string{"bin/app": "x"}})
	g.Expect(err).NotTo(HaveOccurred())
	cf, err := base.ConfigFile()
	g.Expect(err).NotTo(HaveOccurred())
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "", ""
	img, err := mutate.ConfigFile(base, cf)
	g.Expect(err).NotTo(HaveOccurred())
	ref := reg.Host + "/base/scratch:1"
	_, err = imagetest.PushImage(ctx, ref, img)
	g.Expect(err).NotTo(HaveOccurred())
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "scratch", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.Platforms).To(BeEmpty())
	expectOneHeadPerCheck(t, reg, key, "base/scratch")
}

// A single-platform manifest costs one manifest HEAD per check once
// inspected.
func TestASingleManifestCostsOneRequestWhenUnchanged(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t)
	img, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Architecture: "arm64", Files: map[string]string{"bin/app": "single"}})
	g.Expect(err).NotTo(HaveOccurred())
	ref := reg.Host + "/base/single:1"
	_, err = imagetest.PushImage(ctx, ref, img)
	g.Expect(err).NotTo(HaveOccurred())
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "single", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.Platforms).To(Equal([]string{"linux/arm64"}))
	expectOneHeadPerCheck(t, reg, key, "base/single")
}

// An index with BuildKit attestation manifests, filtered to some of its
// platforms, costs one manifest HEAD per check once inspected: neither the
// platform manifests nor the attestations are read again.
func TestAnIndexWithAttestationsCostsOneRequestWhenUnchanged(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.New(t)
	var imgs []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Architecture: arch, Files: map[string]string{"bin/app": arch}})
		g.Expect(err).NotTo(HaveOccurred())
		imgs = append(imgs, img)
	}
	idx, err := imagetest.Index(imgs, true)
	g.Expect(err).NotTo(HaveOccurred())
	ref := reg.Host + "/base/multi:1"
	_, err = imagetest.PushIndex(ctx, ref, idx)
	g.Expect(err).NotTo(HaveOccurred())
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "multi", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref),
		PolicyRef: catalogv1.LocalObjectReference{Name: "p"}, Platforms: []catalogv1.Platform{"linux/arm64"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.Platforms).To(Equal([]string{"linux/arm64"}))
	expectOneHeadPerCheck(t, reg, key, "base/multi")
}

// expectOneHeadPerCheck reconciles an inspected entry a few times and
// expects each reconcile to cost one manifest request and nothing else.
func expectOneHeadPerCheck(t *testing.T, reg *registrytest.Registry, key client.ObjectKey, repo string) {
	t.Helper()
	g := NewWithT(t)
	// Let any reconcile already under way finish first.
	reconciled(t, key)
	reg.ResetCounts()
	const checks = 3
	for range checks {
		reconciled(t, key)
	}
	g.Expect(reg.ManifestRequests(repo)).To(Equal(checks), "one manifest HEAD per check")
	g.Expect(reg.Requests()).To(Equal(checks), "registry requests of any kind")
}

// A new entry is resolved and inspected from one manifest GET: no HEAD
// first, the config read once, and one /v2/ ping for the registry.
func TestANewEntryCostsOneManifestGet(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	var mu sync.Mutex
	var methods []string
	record := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				mu.Lock()
				methods = append(methods, r.Method)
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
	reg := registrytest.New(t, registrytest.WithMiddleware(record))
	img, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Files: map[string]string{"bin/app": "new"}})
	g.Expect(err).NotTo(HaveOccurred())
	ref := reg.Host + "/base/new:1"
	_, err = imagetest.PushImage(ctx, ref, img)
	g.Expect(err).NotTo(HaveOccurred())
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	// The policy turning Ready wakes its entries: let that happen first, so
	// that the entry is reconciled once.
	g.Eventually(func(g Gomega) {
		var p catalogv1.ImagePolicy
		g.Expect(apiReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: "p"}, &p)).To(Succeed())
		g.Expect(apimeta.IsStatusConditionTrue(p.Status.Conditions, catalogv1.ReadyCondition)).To(BeTrue())
	}, timeout, tick).Should(Succeed())
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	methods = nil
	mu.Unlock()
	reg.ResetCounts()
	key := createBaseImage(t, ns, "new", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)

	mu.Lock()
	defer mu.Unlock()
	g.Expect(methods).NotTo(BeEmpty())
	g.Expect(methods[0]).To(Equal(http.MethodGet), "the first manifest request")
	g.Expect(methods[1:]).NotTo(ContainElement(http.MethodGet), "the manifest is read once: %v", methods)
	g.Expect(reg.BlobRequests()).To(Equal(1), "the config")
	g.Expect(reg.Pings()).To(Equal(1), "/v2/ pings")
}
