package controllers

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/goleak"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/inventory"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/rebuild"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

// The suite runs the real reconcilers in a manager against a real API
// server. Each test works in a namespace of its own, with a registry of its
// own.
var (
	k8sClient client.Client
	apiReader client.Reader
	regClient *registry.Client
	testEnv   *testenv.Environment
	nsCounter atomic.Int64

	// The inventory's catalog index, matcher and store.
	catalogIndex   *catalog.Index
	inventoryStore *inventory.Store
)

// consumersInterval is the time between writes of the consumer counts in
// tests.
const consumersInterval = 300 * time.Millisecond

const (
	timeout = 20 * time.Second
	tick    = 100 * time.Millisecond
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapLevel())))
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv = env
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	// Everything running now belongs to the process or the control plane,
	// not to the manager.
	before := goleak.IgnoreCurrent()

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{ByObject: CacheByObject()},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Short timeouts and few retries keep fault tests quick.
	regClient = registry.New(registry.Options{Timeout: 5 * time.Second, RateLimit: 1000, Burst: 1000, Retries: 1})
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&ImagePolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&BaseImageReconciler{
		Client:                  statusFaults.client(mgr.GetClient()),
		APIReader:               mgr.GetAPIReader(),
		Registry:                regClient,
		Recorder:                mgr.GetEventRecorder("plinth"),
		Clock:                   testClock,
		Webhooks:                &rebuild.Sender{Timeout: 2 * time.Second, MaxAttempts: 2, Backoff: 100 * time.Millisecond},
		MaxConcurrentReconciles: 8,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The inventory, as main wires it, with a quick consumer count and
	// retries, and tags kept long enough that no test sees one expire.
	catalogIndex = catalog.NewIndex()
	access := &RegistryAccess{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Index: catalogIndex}
	matcher, err := catalog.NewMatcher(catalogIndex, catalog.Options{Client: regClient,
		ImageAccess: access.ForImage, EntryAccess: access.ForEntry, TagTTL: time.Hour, RetryFailedAfter: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&CatalogIndexReconciler{Client: mgr.GetClient(), Index: catalogIndex}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	inventoryStore = inventory.NewStore()
	if err := (&InventoryReconciler{Client: mgr.GetClient(), Index: catalogIndex, Matcher: matcher, Store: inventoryStore,
		RetryUnknownAfter: time.Second, CatalogSettle: 50 * time.Millisecond}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := mgr.Add(&ConsumerCounts{Client: mgr.GetClient(), Store: inventoryStore, Interval: consumersInterval}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctrlmetrics.Registry.MustRegister(metrics.NewInventoryCollector(inventoryStore.Summary, func() []types.NamespacedName {
		var names []types.NamespacedName
		for _, e := range catalogIndex.Entries() {
			names = append(names, e.Name)
		}
		return names
	}))
	k8sClient = mgr.GetClient()
	apiReader = mgr.GetAPIReader()

	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if err := goleak.Find(leakIgnores(before)...); err != nil {
		fmt.Fprintln(os.Stderr, "goroutines outlived the manager:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// leakIgnores are the goroutines that may outlive a stopped manager
// without being leaks.
func leakIgnores(before goleak.Option) []goleak.Option {
	return []goleak.Option{
		// Goroutines started before the manager: package initializers
		// (klog's flush daemon and the like), the testing framework's, and
		// envtest's, which wait on the etcd and kube-apiserver processes
		// until the deferred env.Stop.
		before,
		// Idle keep-alive connections of HTTP clients: to the API server
		// (client-go keeps its transports in a process-wide cache, so they
		// outlive the manager), and to the tests' registries and webhook
		// receivers. They end when the server closes them or their idle
		// timeout passes.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		// apimachinery's watch.Filter, which controller-runtime's cache
		// puts around the watches of metadata-only informers: its loop
		// blocks sending an event that the stopped informer no longer
		// reads, until the API server ends the watch.
		goleak.IgnoreTopFunction("k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop"),
	}
}

// testClock is the operator's clock: the real time unless a test sets it.
var testClock = &settableClock{}

// settableClock reads the real time, or the time a test set.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		return time.Now()
	}
	return c.now
}

func (c *settableClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// setClock sets the operator's time until the test ends.
func setClock(t *testing.T, now time.Time) {
	t.Helper()
	testClock.mu.Lock()
	testClock.now = now
	testClock.mu.Unlock()
	t.Cleanup(func() {
		testClock.mu.Lock()
		testClock.now = time.Time{}
		testClock.mu.Unlock()
	})
}

func zapLevel() zapcore.Level {
	if os.Getenv("PLINTH_TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	// Reconcile errors are expected in fault tests; tests assert on
	// conditions instead.
	return zapcore.DPanicLevel
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("t%d", nsCounter.Add(1))}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// The test's registry closes when the test ends: its entries go too, so
	// they do not retry against a closed port for the rest of the suite.
	t.Cleanup(func() {
		_ = k8sClient.DeleteAllOf(context.Background(), &catalogv1.BaseImage{}, client.InNamespace(ns.Name))
	})
	return ns.Name
}

// condition returns a condition of a BaseImage as read from the API server,
// or nil.
func condition(g Gomega, key client.ObjectKey, typ string) *metav1.Condition {
	var bi catalogv1.BaseImage
	g.Expect(apiReader.Get(context.Background(), key, &bi)).To(Succeed())
	return meta.FindStatusCondition(bi.Status.Conditions, typ)
}

// getBaseImage reads a BaseImage from the API server.
func getBaseImage(g Gomega, key client.ObjectKey) *catalogv1.BaseImage {
	var bi catalogv1.BaseImage
	g.Expect(apiReader.Get(context.Background(), key, &bi)).To(Succeed())
	return &bi
}

// requestReconcile asks for an immediate reconcile through the annotation a
// user would set.
func requestReconcile(t *testing.T, key client.ObjectKey) {
	t.Helper()
	var bi catalogv1.BaseImage
	if err := k8sClient.Get(context.Background(), key, &bi); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(bi.DeepCopy())
	if bi.Annotations == nil {
		bi.Annotations = map[string]string{}
	}
	bi.Annotations[catalogv1.ReconcileRequestAnnotation] = time.Now().Format(time.RFC3339Nano)
	if err := k8sClient.Patch(context.Background(), &bi, patch); err != nil {
		t.Fatal(err)
	}
}
