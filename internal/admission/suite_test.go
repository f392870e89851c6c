package admission_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/admission"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

// The suite runs the webhook as the operator does: the manager's webhook
// server, the real catalog index reconciler and a Matcher, against a real
// API server that calls the webhook through config/webhook's
// configuration. Every test works in namespaces of its own; the images
// live in one registry on loopback.
var (
	testEnv    *testenv.Environment
	k8sClient  client.Client
	reg        *registrytest.Registry
	regClient  *registry.Client
	metricsReg *prometheus.Registry
	validator  *admission.Validator
	testIndex  *catalog.Index
	nsCounter  atomic.Int64
	imgs       images
)

// matchTimeout is the suite's --admission-match-timeout.
const matchTimeout = time.Second

// images are the suite's: a catalog base, an app built FROM it, and an app
// built FROM a base the catalog does not have.
type images struct {
	python, pythonDigest string // the catalog entry's image and digest
	shop, shopDigest     string // FROM python, with layers on top
	cart                 string // FROM an unapproved base
}

func TestMain(m *testing.M) {
	flag.Parse()
	// Benchmarks alone (-run '^$') need no control plane.
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "^$" {
		os.Exit(m.Run())
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env, err := testenv.StartWithWebhooks(filepath.Join(testenv.Root(), "config", "webhook", "manifests.yaml"))
	if err != nil {
		return fail(err)
	}
	testEnv = env
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	r, err := registrytest.NewServer("127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	reg = r
	if imgs, err = pushImages(r.Host); err != nil {
		return fail(err)
	}

	wo := env.Webhook
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir,
		}),
	})
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	regClient = registry.New(registry.Options{Transport: reg.Transport(), Timeout: 5 * time.Second, RateLimit: 1000, Burst: 1000, Retries: 1})
	testIndex = catalog.NewIndex()
	if err := (&controllers.CatalogIndexReconciler{Client: mgr.GetClient(), Index: testIndex}).SetupWithManager(mgr); err != nil {
		return fail(err)
	}
	matcher, err := catalog.NewMatcher(testIndex, catalog.Options{Client: regClient})
	if err != nil {
		return fail(err)
	}
	metricsReg = prometheus.NewRegistry()
	validator = &admission.Validator{
		Matcher:            matcher,
		Recorder:           mgr.GetEventRecorder("plinth-admission"),
		Metrics:            admission.NewMetrics(metricsReg),
		ExcludedNamespaces: []string{"plinth-system"},
		MatchTimeout:       matchTimeout,
	}
	if err := validator.SetupWithManager(ctx, mgr); err != nil {
		return fail(err)
	}
	k8sClient, err = client.New(env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return fail(err)
	}

	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fail(fmt.Errorf("cache did not sync"))
	}
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// pushImages pushes the suite's images to the registry at host.
func pushImages(host string) (images, error) {
	ctx := context.Background()
	python, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"usr/bin/python3": "py"}})
	if err != nil {
		return images{}, err
	}
	node, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"usr/bin/node": "js"}})
	if err != nil {
		return images{}, err
	}
	shop, err := appendLayer(python, "app/main.py")
	if err != nil {
		return images{}, err
	}
	cart, err := appendLayer(node, "app/main.js")
	if err != nil {
		return images{}, err
	}
	out := images{python: host + "/base/python:3.13", shop: host + "/apps/shop:1", cart: host + "/apps/cart:1"}
	if out.pythonDigest, err = imagetest.PushImage(ctx, out.python, python); err != nil {
		return images{}, err
	}
	if out.shopDigest, err = imagetest.PushImage(ctx, out.shop, shop); err != nil {
		return images{}, err
	}
	if _, err = imagetest.PushImage(ctx, host+"/vendor/node:22", node); err != nil {
		return images{}, err
	}
	if _, err = imagetest.PushImage(ctx, out.cart, cart); err != nil {
		return images{}, err
	}
	return out, nil
}

// appendLayer builds an image FROM base with one more layer holding file.
func appendLayer(base v1.Image, file string) (v1.Image, error) {
	top, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{file: "content of " + file}})
	if err != nil {
		return nil, err
	}
	layers, err := top.Layers()
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(base, layers...)
}

// newNamespace creates a namespace for one test, enrolled in mode unless
// mode is empty.
func newNamespace(t *testing.T, mode admission.Mode) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("adm%d", nsCounter.Add(1))}}
	if mode != "" {
		ns.Labels = map[string]string{admission.ModeLabel: string(mode)}
	}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// approve puts the python base in the catalog, as an entry of namespace ns
// whose approved digest is the base's, and waits until the webhook admits
// an image built on it.
func approve(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	bi := &catalogv1.BaseImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "python"},
		Spec:       catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(imgs.python), PolicyRef: catalogv1.LocalObjectReference{Name: "default"}},
	}
	if err := k8sClient.Create(ctx, bi); err != nil {
		t.Fatal(err)
	}
	// The entry's image is gone from the index when the test ends, so that
	// other tests' alternatives stay theirs.
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), bi) })
	bi.Status = catalogv1.BaseImageStatus{
		ResolvedDigest: imgs.pythonDigest, ApprovedDigest: imgs.pythonDigest,
		History: []catalogv1.DigestRecord{{Digest: imgs.pythonDigest, FirstSeen: metav1.Now()}},
	}
	if err := k8sClient.Status().Update(ctx, bi); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		res, err := validator.Matcher.MatchReference(ctx, mustRef(t, imgs.shop), "")
		if err != nil {
			return err
		}
		if res.Class != catalog.Approved {
			return fmt.Errorf("shop is %s: %s", res.Class, res.Reason)
		}
		return nil
	})
}

func mustRef(t *testing.T, image string) name.Reference {
	t.Helper()
	ref, err := catalog.ParseImage(image)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// waitFor retries f until it succeeds or 20 seconds pass.
func waitFor(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// warnings collects the warnings the API server returns to a client.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "\n")
}

// clientWithWarnings returns a client whose warnings are collected.
func clientWithWarnings(t *testing.T) (client.Client, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(testEnv.Config)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

// pod returns a Pod of namespace ns running images, one container each.
func pod(ns, name string, images ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	return p
}
