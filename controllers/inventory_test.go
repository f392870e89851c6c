package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// inventoryFixture is a registry with two digests of a catalog base
// (python), a base the catalog does not know, and apps built on them; a
// BaseImage approving the newer python digest with the older one in its
// history; and two namespaces to run Pods in.
type inventoryFixture struct {
	reg      *registrytest.Registry
	catalog  client.ObjectKey // the python BaseImage
	shop     string           // namespace of the web Pod
	billing  string           // namespace of the worker Pod
	oldBase  string
	newBase  string
	apps     map[string]pushedImage
	newestFn func(t *testing.T) string // pushes a newer python digest
}

// pushedImage is an app image: its tag reference, manifest digest and
// configuration id.
type pushedImage struct {
	ref, digest, configID string
}

// appendLayers builds an image on base, as a Dockerfile's FROM does.
func appendLayers(t *testing.T, base v1.Image, content ...string) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, c := range content {
		layers = append(layers, static.NewLayer([]byte(c), ggcrtypes.OCILayer))
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func baseLayers(t *testing.T, files map[string]string) v1.Image {
	t.Helper()
	img, err := imagetest.Image(imagetest.ImageOptions{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func pushApp(t *testing.T, ref string, img v1.Image, opts ...remote.Option) pushedImage {
	t.Helper()
	d, err := imagetest.PushImage(context.Background(), ref, img, opts...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return pushedImage{ref: ref, digest: d, configID: cfg.String()}
}

// newInventoryFixture makes the fixture; with auth, the registry requires
// it and the catalog entry has it in its pull secret.
func newInventoryFixture(t *testing.T, auth *authn.Basic) *inventoryFixture {
	t.Helper()
	var (
		regOpts []registrytest.Option
		opts    []remote.Option
	)
	if auth != nil {
		regOpts = append(regOpts, registrytest.WithBasicAuth(auth.Username, auth.Password))
		opts = append(opts, remote.WithAuth(auth))
	}
	reg := registrytest.New(t, regOpts...)
	f := &inventoryFixture{reg: reg, shop: newPodNamespace(t), billing: newPodNamespace(t), apps: map[string]pushedImage{}}
	pushApp := func(t *testing.T, ref string, img v1.Image) pushedImage { return pushApp(t, ref, img, opts...) }
	older := appendLayers(t, baseLayers(t, map[string]string{"etc/os-release": "ID=alpine\nVERSION_ID=3.21.0\n"}), "python 3.13.0")
	newer := appendLayers(t, baseLayers(t, map[string]string{"etc/os-release": "ID=alpine\nVERSION_ID=3.22.0\n"}), "python 3.13.1")
	other := baseLayers(t, map[string]string{"etc/os-release": "ID=debian\n"})
	python := reg.Host + "/base/python"
	f.oldBase = pushApp(t, python+":old", older).digest
	f.newBase = pushApp(t, python+":3.13", newer).digest
	pushApp(t, reg.Host+"/vendor/debian:12", other)
	for name, img := range map[string]v1.Image{
		"web":     appendLayers(t, newer, "web app"),
		"migrate": appendLayers(t, newer, "migrations"),
		"debug":   appendLayers(t, newer, "debug tools"),
		"worker":  appendLayers(t, older, "worker app"),
		"proxy":   appendLayers(t, other, "proxy"),
	} {
		f.apps[name] = pushApp(t, reg.Host+"/apps/"+name+":1", img)
	}
	f.newestFn = func(t *testing.T) string {
		newest := appendLayers(t, baseLayers(t, map[string]string{"etc/os-release": "ID=alpine\nVERSION_ID=3.22.1\n"}), "python 3.13.2")
		return pushApp(t, python+":3.13", newest).digest
	}

	// The catalog entry, suspended so that its status holds what the test
	// writes.
	ns := newNamespace(t)
	createPolicy(t, ns, "default", catalogv1.ImagePolicySpec{})
	spec := catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(python + ":3.13"), PolicyRef: catalogv1.LocalObjectReference{Name: "default"}, Suspend: true}
	if auth != nil {
		if err := k8sClient.Create(context.Background(), dockerConfigSecret(ns, "creds", reg.Host, auth.Username, auth.Password)); err != nil {
			t.Fatal(err)
		}
		spec.PullSecretRef = &catalogv1.LocalObjectReference{Name: "creds"}
	}
	f.catalog = createBaseImage(t, ns, "python", spec)
	f.setDigests(t, f.newBase, f.newBase, f.oldBase)
	return f
}

// setDigests writes the entry's approved digest and history (newest
// first), as the BaseImage reconciler would.
func (f *inventoryFixture) setDigests(t *testing.T, approved string, history ...string) {
	t.Helper()
	var bi catalogv1.BaseImage
	if err := apiReader.Get(context.Background(), f.catalog, &bi); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(bi.DeepCopy())
	bi.Status.ApprovedDigest, bi.Status.ResolvedDigest = approved, approved
	bi.Status.History = nil
	for _, d := range history {
		bi.Status.History = append(bi.Status.History, catalogv1.DigestRecord{Digest: d, FirstSeen: metav1.Now()})
	}
	if err := k8sClient.Status().Patch(context.Background(), &bi, patch); err != nil {
		t.Fatal(err)
	}
}

// newPodNamespace creates a namespace whose Pods are deleted when the test
// ends.
func newPodNamespace(t *testing.T) string {
	t.Helper()
	ns := newNamespace(t)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	if err := k8sClient.Create(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k8sClient.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0))
	})
	return ns
}

// podContainer is a container of a test Pod and the imageID its runtime
// reports.
type podContainer struct {
	name, image, imageID string
}

func running(name string, img pushedImage) podContainer {
	return podContainer{name: name, image: img.ref, imageID: "docker-pullable://" + img.ref[:len(img.ref)-2] + "@" + img.digest}
}

// runPod creates a Pod and reports its containers running, as a kubelet
// would: init containers, containers, then ephemeral containers added
// through their subresource.
func runPod(t *testing.T, ns, name string, inits, containers, ephemeral []podContainer) {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, c := range inits {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: c.name, Image: c.image})
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c.name, Image: c.image})
	}
	if err := k8sClient.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if len(ephemeral) > 0 {
		for _, c := range ephemeral {
			pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.name, Image: c.image,
					TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}})
		}
		if err := k8sClient.SubResource("ephemeralcontainers").Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	status := func(cs []podContainer) []corev1.ContainerStatus {
		var out []corev1.ContainerStatus
		for _, c := range cs {
			out = append(out, corev1.ContainerStatus{Name: c.name, Image: c.image, ImageID: c.imageID,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}})
		}
		return out
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.InitContainerStatuses = status(inits)
	pod.Status.ContainerStatuses = status(containers)
	pod.Status.EphemeralContainerStatuses = status(ephemeral)
	if err := k8sClient.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// runWorkloads runs the fixture's Pods: in shop, web (an init container
// and an ephemeral debug container on the approved base, and a proxy on a
// base the catalog does not know, whose runtime reports only a
// configuration id); in billing, worker, on the older digest.
func (f *inventoryFixture) runWorkloads(t *testing.T) {
	t.Helper()
	proxy := f.apps["proxy"]
	runPod(t, f.shop, "web",
		[]podContainer{running("migrate", f.apps["migrate"])},
		[]podContainer{running("web", f.apps["web"]), {name: "proxy", image: proxy.ref, imageID: proxy.configID}},
		[]podContainer{running("debug", f.apps["debug"])})
	runPod(t, f.billing, "worker", nil, []podContainer{running("worker", f.apps["worker"])}, nil)
}

// gauge reads a gauge of ctrlmetrics.Registry whose labels include want;
// -1 when there is none.
func gauge(g Gomega, name string, want map[string]string) float64 {
	mfs, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// namespaceCounts reads plinth_inventory_containers of a namespace by
// class.
func namespaceCounts(g Gomega, ns string) map[string]float64 {
	out := map[string]float64{}
	for _, c := range []string{"approved", "superseded", "unapproved", "unknown"} {
		out[c] = gauge(g, "plinth_inventory_containers", map[string]string{"namespace": ns, "class": c})
	}
	return out
}

// share is the share of a namespace's containers on approved bases, as
// the documented PromQL computes it.
func share(c map[string]float64) float64 {
	total := c["approved"] + c["superseded"] + c["unapproved"] + c["unknown"]
	if total <= 0 {
		return -1
	}
	return c["approved"] / total
}

func consumers(g Gomega, key client.ObjectKey) *catalogv1.ConsumersStatus {
	return getBaseImage(g, key).Status.Consumers
}

func TestInventoryClassifiesRunningContainers(t *testing.T) {
	g := NewWithT(t)
	f := newInventoryFixture(t, nil)
	f.runWorkloads(t)

	// shop: migrate, web and debug on the approved digest, proxy on an
	// unknown base; billing: worker on the older digest.
	g.Eventually(func(g Gomega) {
		g.Expect(namespaceCounts(g, f.shop)).To(Equal(map[string]float64{"approved": 3, "superseded": 0, "unapproved": 1, "unknown": 0}))
		g.Expect(namespaceCounts(g, f.billing)).To(Equal(map[string]float64{"approved": 0, "superseded": 1, "unapproved": 0, "unknown": 0}))
	}, timeout, tick).Should(Succeed())
	g.Expect(share(namespaceCounts(g, f.shop))).To(Equal(0.75))
	g.Expect(share(namespaceCounts(g, f.billing))).To(Equal(0.0))
	base := map[string]string{"base_namespace": f.catalog.Namespace, "base_name": f.catalog.Name}
	g.Expect(gauge(g, "plinth_baseimage_consumer_containers", with(base, "class", "approved"))).To(Equal(3.0))
	g.Expect(gauge(g, "plinth_baseimage_consumer_containers", with(base, "class", "superseded"))).To(Equal(1.0))
	for _, c := range []string{"approved", "superseded", "unapproved", "unknown"} {
		g.Expect(gauge(g, "plinth_inventory_cluster_containers", map[string]string{"class": c})).To(BeNumerically(">=", 0))
	}

	// The counts reach the BaseImage's status in the next batch.
	g.Eventually(func(g Gomega) {
		g.Expect(consumers(g, f.catalog)).To(Equal(&catalogv1.ConsumersStatus{Pods: 2, Namespaces: 2, Containers: 4, Superseded: 1}))
	}, timeout, tick).Should(Succeed())
	// While the counts hold, the entry stays still: no batch writes it
	// again. (A write already under way, such as the entry's own last
	// reconcile, may land once; a batch writing every time never leaves a
	// quiet window.)
	g.Eventually(func(g Gomega) {
		rv := getBaseImage(g, f.catalog).ResourceVersion
		time.Sleep(5 * consumersInterval)
		g.Expect(getBaseImage(g, f.catalog).ResourceVersion).To(Equal(rv))
	}, 4*timeout, tick).Should(Succeed())

	// A newer approved digest supersedes the one web runs on. Matching
	// again reads the new catalog digest, and none of the apps.
	f.reg.ResetCounts()
	newest := f.newestFn(t)
	f.reg.ResetCounts()
	f.setDigests(t, newest, newest, f.newBase, f.oldBase)
	g.Eventually(func(g Gomega) {
		g.Expect(namespaceCounts(g, f.shop)).To(Equal(map[string]float64{"approved": 0, "superseded": 3, "unapproved": 1, "unknown": 0}))
		g.Expect(consumers(g, f.catalog)).To(Equal(&catalogv1.ConsumersStatus{Pods: 2, Namespaces: 2, Containers: 4, Superseded: 4}))
	}, timeout, tick).Should(Succeed())
	for app := range f.apps {
		if n := f.reg.ManifestRequests("apps/" + app); n != 0 {
			t.Errorf("matching again after a catalog change read %d manifests of apps/%s, want 0", n, app)
		}
	}
	if n := f.reg.ManifestRequests("base/python"); n == 0 {
		t.Error("the new catalog digest was never read")
	}

	// A Pod that finishes runs nothing any more.
	var worker corev1.Pod
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: f.billing, Name: "worker"}, &worker)).To(Succeed())
	worker.Status.Phase = corev1.PodSucceeded
	g.Expect(k8sClient.Status().Update(context.Background(), &worker)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(namespaceCounts(g, f.billing)["superseded"]).To(Equal(-1.0))
		g.Expect(consumers(g, f.catalog)).To(Equal(&catalogv1.ConsumersStatus{Pods: 1, Namespaces: 1, Containers: 3, Superseded: 3}))
	}, timeout, tick).Should(Succeed())
}

func TestInventoryReadsPrivateImagesWithTheCatalogsCredentials(t *testing.T) {
	g := NewWithT(t)
	f := newInventoryFixture(t, &authn.Basic{Username: "alice", Password: "s3cret"})
	f.runWorkloads(t)
	// The apps are on the catalog entry's registry host, which refuses
	// anonymous reads: the entry's pull secret reads them.
	g.Eventually(func(g Gomega) {
		g.Expect(namespaceCounts(g, f.shop)).To(Equal(map[string]float64{"approved": 3, "superseded": 0, "unapproved": 1, "unknown": 0}))
		g.Expect(namespaceCounts(g, f.billing)).To(Equal(map[string]float64{"approved": 0, "superseded": 1, "unapproved": 0, "unknown": 0}))
	}, timeout, tick).Should(Succeed())
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

func TestInventoryPodChurnCostsNoRegistryRequest(t *testing.T) {
	g := NewWithT(t)
	f := newInventoryFixture(t, nil)
	f.runWorkloads(t)
	want := map[string]float64{"approved": 3, "superseded": 0, "unapproved": 1, "unknown": 0}
	g.Eventually(func(g Gomega) { g.Expect(namespaceCounts(g, f.shop)).To(Equal(want)) }, timeout, tick).Should(Succeed())

	// Pods come and go with the same images, many times over.
	f.reg.ResetCounts()
	for round := range 3 {
		g.Expect(k8sClient.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(f.shop), client.GracePeriodSeconds(0))).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(namespaceCounts(g, f.shop)["approved"]).To(Equal(-1.0))
		}, timeout, tick).Should(Succeed(), "round %d: the deleted Pod is still counted", round)
		f.runWorkloadsIn(t, f.shop)
		g.Eventually(func(g Gomega) { g.Expect(namespaceCounts(g, f.shop)).To(Equal(want)) }, timeout, tick).Should(Succeed())
	}
	if n := f.reg.Requests(); n != 0 {
		t.Errorf("Pod churn with images already seen made %d registry requests, want 0", n)
	}
}

// runWorkloadsIn runs the web Pod of runWorkloads again.
func (f *inventoryFixture) runWorkloadsIn(t *testing.T, ns string) {
	t.Helper()
	proxy := f.apps["proxy"]
	runPod(t, ns, "web",
		[]podContainer{running("migrate", f.apps["migrate"])},
		[]podContainer{running("web", f.apps["web"]), {name: "proxy", image: proxy.ref, imageID: proxy.configID}},
		[]podContainer{running("debug", f.apps["debug"])})
}

// The cache keeps only what the inventory reads of a Pod.
func TestStripPodKeepsWhatTheInventoryReads(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{"big": string(make([]byte, 4096))}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "r.example.com/migrate:1", Command: []string{"migrate"}}},
			Containers: []corev1.Container{{Name: "web", Image: "r.example.com/web:1",
				Env: []corev1.EnvVar{{Name: "A", Value: "b"}}, Args: []string{"--serve"}}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "r.example.com/debug:1", Command: []string{"sh"}}}},
			NodeName:            "node-1",
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
			InitContainerStatuses:      []corev1.ContainerStatus{{Name: "migrate", ImageID: "r.example.com/migrate@" + digestOf("a")}},
			ContainerStatuses:          []corev1.ContainerStatus{{Name: "web", Image: "r.example.com/web:1", ImageID: "docker-pullable://r.example.com/web@" + digestOf("b"), RestartCount: 3}},
			EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debug", ImageID: digestOf("c")}}},
	}
	got, err := stripPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	p := got.(*corev1.Pod)
	if p.Labels != nil || p.Annotations != nil || p.Spec.NodeName != "" || p.Status.PodIP != "" ||
		p.Spec.Containers[0].Env != nil || p.Spec.Containers[0].Args != nil || p.Spec.InitContainers[0].Command != nil ||
		p.Spec.EphemeralContainers[0].Command != nil || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("stripped Pod keeps more than the inventory reads: %+v", p)
	}
	if !sameImages(podImages(pod), podImages(p)) || p.Status.Phase != corev1.PodRunning || p.Name != "web" || p.Namespace != "shop" {
		t.Errorf("stripped Pod lost what the inventory reads: %+v", podImages(p))
	}
	want := []containerImage{
		{name: "migrate", image: "r.example.com/migrate:1", digest: digestOf("a")},
		{name: "web", image: "r.example.com/web:1", digest: digestOf("b")},
		{name: "debug", image: "r.example.com/debug:1"}, // a configuration id is no digest
	}
	if got := podImages(p); !sameImages(got, want) {
		t.Errorf("containers of the stripped Pod: %+v, want %+v", got, want)
	}

	// A container not pulled yet runs nothing.
	pod.Status.ContainerStatuses[0].ImageID = ""
	if got := podImages(pod); len(got) != 2 {
		t.Errorf("a container without an imageID is listed: %+v", got)
	}
}

func digestOf(s string) string { return "sha256:" + strings.Repeat(s[:1], 64) }
