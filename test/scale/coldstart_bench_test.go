package scale

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/inventory"
	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

// Defaults of the operator's flags (main.go) that the benchmark runs with
// unless PLINTH_BENCH_* says otherwise.
const (
	defaultConcurrency = 4 // --concurrency
)

// BenchmarkColdStart creates a catalog of new BaseImages at once (1,000
// entries over 100 distinct digests, scanning off) and measures the time
// until every entry is Ready, with the status patches, events and registry
// requests it took. The operator runs with its default flags; set
// PLINTH_BENCH_ENTRIES, PLINTH_BENCH_DIGESTS, PLINTH_BENCH_CONCURRENCY,
// PLINTH_BENCH_REGISTRY_RATE (requests per second and host),
// PLINTH_BENCH_REGISTRY_BURST, PLINTH_BENCH_KUBE_QPS and
// PLINTH_BENCH_KUBE_BURST to explore. Run it once: -benchtime=1x.
func BenchmarkColdStart(b *testing.B) {
	f := newColdStartFixture(b)
	for b.Loop() {
		r := f.runPlinth(b)
		b.ReportMetric(r.ready.Seconds(), "s-to-ready")
		b.ReportMetric(f.perEntry(r.patches), "patches/entry")
		b.ReportMetric(f.perEntry(r.events), "events/entry")
		b.ReportMetric(f.perEntry(r.requests), "registry-requests/entry")
		f.printPlinth(r)
	}
}

// coldStartFixture is what a cold start round runs on: one control plane and
// one loopback registry holding the images every round's entries point at.
type coldStartFixture struct {
	env         *testenv.Environment
	cfg         *rest.Config // the operator's: main's client-side limits
	reg         *registrytest.Registry
	kinds       *requestKinds // the registry's requests by kind
	refs        []string
	entries     int
	digests     int
	concurrency int
	regOpts     registry.Options
}

func newColdStartFixture(b *testing.B) *coldStartFixture {
	b.Helper()
	f := &coldStartFixture{
		entries:     envInt(b, "PLINTH_BENCH_ENTRIES", 1000),
		digests:     envInt(b, "PLINTH_BENCH_DIGESTS", 100),
		concurrency: envInt(b, "PLINTH_BENCH_CONCURRENCY", defaultConcurrency),
		regOpts: registry.Options{
			RateLimit: float64(envInt(b, "PLINTH_BENCH_REGISTRY_RATE", int(registry.DefaultRateLimit))),
			Burst:     envInt(b, "PLINTH_BENCH_REGISTRY_BURST", registry.DefaultBurst),
		},
	}

	ctrl.SetLogger(logr.Discard())
	env, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	f.env = env
	f.cfg = rest.CopyConfig(env.Config)
	// What main does: the kubeconfig's client-side limits, or none
	// (controller-runtime's default) unless --kube-api-qps sets one.
	f.cfg.QPS, f.cfg.Burst = float32(envInt(b, "PLINTH_BENCH_KUBE_QPS", -1)), envInt(b, "PLINTH_BENCH_KUBE_BURST", 0)

	f.kinds = &requestKinds{}
	f.reg = registrytest.New(b, registrytest.WithMiddleware(f.kinds.count))
	ctx := b.Context()
	imgs := make([]v1.Image, f.digests)
	for i := range imgs {
		if imgs[i], err = imagetest.Image(imagetest.ImageOptions{Created: time.Now().Add(-time.Hour),
			Files: map[string]string{"etc/motd": strconv.Itoa(i)}}); err != nil {
			b.Fatal(err)
		}
	}
	f.refs = make([]string, f.entries)
	var wg sync.WaitGroup
	errs := make(chan error, f.entries)
	sem := make(chan struct{}, 8)
	for i := range f.refs {
		f.refs[i] = fmt.Sprintf("%s/base/app-%04d:1", f.reg.Host, i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := imagetest.PushImage(ctx, f.refs[i], imgs[i%f.digests]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return f
}

// coldStartResult is one round's outcome.
type coldStartResult struct {
	ready, created time.Duration
	patches        int64 // status patches, counted in plinth's client
	writes         int64 // changes to the entries that a watch saw
	events         int64
	eventSummary   string
	requests       int64  // registry requests
	requestKinds   string // registry requests by kind
}

func (f *coldStartFixture) perEntry(n int64) float64 { return float64(n) / float64(f.entries) }

// runPlinth runs plinth's controllers on a new namespace of BaseImages and
// waits until all are Ready.
func (f *coldStartFixture) runPlinth(b *testing.B) coldStartResult {
	b.Helper()
	ctx := b.Context()
	ns := fmt.Sprintf("cold-%d", time.Now().UnixNano())
	var patches atomic.Int64
	rec := &countingRecorder{}
	mgrCtx, stop := context.WithCancel(ctx)
	defer stop()
	startManager(b, mgrCtx, f.cfg, f.regOpts, f.concurrency, &patches, rec)

	c, err := client.New(f.env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	if err := c.Create(ctx, &catalogv1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec: catalogv1.ImagePolicySpec{MaxAge: &metav1.Duration{Duration: 720 * time.Hour}}}); err != nil {
		b.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(f.env.Config)
	if err != nil {
		b.Fatal(err)
	}
	writes := countWrites(b, dyn.Resource(catalogv1.GroupVersion.WithResource("baseimages")).Namespace(ns))
	f.reg.ResetCounts()
	start := time.Now()
	f.createBaseImages(b, c, ns)
	r := coldStartResult{created: time.Since(start)}
	r.ready = f.waitReady(b, start, func() (int, error) {
		var list catalogv1.BaseImageList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		n := 0
		for _, bi := range list.Items {
			if apimeta.IsStatusConditionTrue(bi.Status.Conditions, catalogv1.ReadyCondition) {
				n++
			}
		}
		return n, nil
	})
	// Late patches and events (conflict retries) count too.
	time.Sleep(2 * time.Second)
	stop()
	r.patches, r.writes, r.events, r.eventSummary = patches.Load(), writes.Load(), rec.count.Load(), rec.summary()
	r.requests, r.requestKinds = int64(f.reg.Requests()), f.requestKinds()
	return r
}

// waitReady polls count until it reports every entry Ready and returns the
// time since start.
func (f *coldStartFixture) waitReady(b *testing.B, start time.Time, count func() (int, error)) time.Duration {
	b.Helper()
	for {
		n, err := count()
		if err != nil {
			b.Fatal(err)
		}
		if n == f.entries {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Minute {
			b.Fatalf("%d of %d entries Ready after %s", n, f.entries, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *coldStartFixture) printPlinth(r coldStartResult) {
	fmt.Printf("\nplinth cold start (%d new BaseImages over %d digests, one loopback registry, scanning off)\n", f.entries, f.digests)
	fmt.Printf("  settings: --concurrency=%d --registry-rate-limit=%g --registry-burst=%d, API client QPS %g burst %d\n",
		f.concurrency, f.regOpts.RateLimit, f.regOpts.Burst, f.cfg.QPS, f.cfg.Burst)
	fmt.Printf("  all Ready after:        %6.1f s (created in %.1f s): %.0f entries/s\n", r.ready.Seconds(), r.created.Seconds(), float64(f.entries)/r.ready.Seconds())
	fmt.Printf("  status patches:         %6.2f per entry\n", f.perEntry(r.patches))
	fmt.Printf("  object writes:          %6.2f per entry (changes a watch saw)\n", f.perEntry(r.writes))
	fmt.Printf("  events:                 %6.2f per entry (%s)\n", f.perEntry(r.events), r.eventSummary)
	fmt.Printf("  registry requests:      %6.2f per entry (%s)\n\n", f.perEntry(r.requests), r.requestKinds)
}

func (f *coldStartFixture) requestKinds() string {
	manifests, blobs, pings := f.reg.TotalManifestRequests(), f.reg.BlobRequests(), f.reg.Pings()
	return fmt.Sprintf("%d manifest, %d blob, %d /v2/, %d other such as tag lists",
		manifests, blobs, pings, f.reg.Requests()-manifests-blobs-pings)
}

// startManager runs the BaseImage and ImagePolicy controllers as main wires
// them, scanning off, counting status patches and events.
func startManager(b *testing.B, ctx context.Context, cfg *rest.Config, regOpts registry.Options, concurrency int,
	patches *atomic.Int64, rec events.EventRecorder) {
	b.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{ByObject: controllers.CacheByObject()},
		// Each benchmark round has a manager of its own.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := controllers.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		b.Fatal(err)
	}
	counting := &patchCounter{Client: mgr.GetClient(), n: patches}
	if err := (&controllers.ImagePolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	if err := (&controllers.BaseImageReconciler{
		Client:                  counting,
		APIReader:               mgr.GetAPIReader(),
		Registry:                registry.New(regOpts),
		Recorder:                rec,
		MaxConcurrentReconciles: concurrency,
	}).SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	// The consumer counts write BaseImage status too.
	if err := mgr.Add(&controllers.ConsumerCounts{Client: counting, Store: inventory.NewStore(), Interval: time.Second}); err != nil {
		b.Fatal(err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		b.Fatal("cache did not sync")
	}
}

// patchCounter counts the status patches of BaseImages.
type patchCounter struct {
	client.Client
	n *atomic.Int64
}

func (c *patchCounter) Status() client.SubResourceWriter {
	return &statusCounter{SubResourceWriter: c.Client.Status(), n: c.n}
}

type statusCounter struct {
	client.SubResourceWriter
	n *atomic.Int64
}

func (w *statusCounter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if _, ok := obj.(*catalogv1.BaseImage); ok {
		w.n.Add(1)
	}
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// countingRecorder counts events by reason.
type countingRecorder struct {
	count    atomic.Int64
	mu       sync.Mutex
	byReason map[string]int
}

func (r *countingRecorder) Eventf(_ runtime.Object, _ runtime.Object, _, reason, _, _ string, _ ...any) {
	r.count.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byReason == nil {
		r.byReason = map[string]int{}
	}
	r.byReason[reason]++
}

func (r *countingRecorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.byReason)
}

func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("%s: %v", key, err)
	}
	return n
}

// createBaseImages creates a BaseImage for every entry in ns, under the
// policy "p".
func (f *coldStartFixture) createBaseImages(b *testing.B, c client.Client, ns string) {
	b.Helper()
	for i, ref := range f.refs {
		bi := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("app-%04d", i)},
			Spec: catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}}}
		if err := c.Create(b.Context(), bi); err != nil {
			b.Fatal(err)
		}
	}
}
