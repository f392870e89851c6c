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
	entries := envInt(b, "PLINTH_BENCH_ENTRIES", 1000)
	digests := envInt(b, "PLINTH_BENCH_DIGESTS", 100)
	concurrency := envInt(b, "PLINTH_BENCH_CONCURRENCY", defaultConcurrency)
	regOpts := registry.Options{
		RateLimit: float64(envInt(b, "PLINTH_BENCH_REGISTRY_RATE", int(registry.DefaultRateLimit))),
		Burst:     envInt(b, "PLINTH_BENCH_REGISTRY_BURST", registry.DefaultBurst),
	}

	ctrl.SetLogger(logr.Discard())
	env, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	cfg := rest.CopyConfig(env.Config)
	// What main does: the kubeconfig's client-side limits, or none
	// (controller-runtime's default) unless --kube-api-qps sets one.
	cfg.QPS, cfg.Burst = float32(envInt(b, "PLINTH_BENCH_KUBE_QPS", -1)), envInt(b, "PLINTH_BENCH_KUBE_BURST", 0)

	reg := registrytest.New(b)
	ctx := b.Context()
	imgs := make([]v1.Image, digests)
	for i := range imgs {
		if imgs[i], err = imagetest.Image(imagetest.ImageOptions{Created: time.Now().Add(-time.Hour),
			Files: map[string]string{"etc/motd": strconv.Itoa(i)}}); err != nil {
			b.Fatal(err)
		}
	}
	refs := make([]string, entries)
	var wg sync.WaitGroup
	errs := make(chan error, entries)
	sem := make(chan struct{}, 8)
	for i := range refs {
		refs[i] = fmt.Sprintf("%s/base/app-%04d:1", reg.Host, i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := imagetest.PushImage(ctx, refs[i], imgs[i%digests]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}

	for b.Loop() {
		ns := fmt.Sprintf("cold-%d", time.Now().UnixNano())
		var patches atomic.Int64
		rec := &countingRecorder{}
		mgrCtx, stop := context.WithCancel(ctx)
		startManager(b, mgrCtx, cfg, regOpts, concurrency, &patches, rec)

		c, err := client.New(env.Config, client.Options{Scheme: testenv.Scheme()})
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
		reg.ResetCounts()
		start := time.Now()
		for i, ref := range refs {
			bi := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("app-%04d", i)},
				Spec: catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}}}
			if err := c.Create(ctx, bi); err != nil {
				b.Fatal(err)
			}
		}
		created := time.Since(start)
		var ready time.Duration
		for {
			var list catalogv1.BaseImageList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, bi := range list.Items {
				if apimeta.IsStatusConditionTrue(bi.Status.Conditions, catalogv1.ReadyCondition) {
					n++
				}
			}
			if n == entries {
				ready = time.Since(start)
				break
			}
			if time.Since(start) > 30*time.Minute {
				b.Fatalf("%d of %d entries Ready after %s", n, entries, time.Since(start))
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Late patches and events (conflict retries) count too.
		time.Sleep(2 * time.Second)
		stop()

		perEntry := func(n int64) float64 { return float64(n) / float64(entries) }
		b.ReportMetric(ready.Seconds(), "s-to-ready")
		b.ReportMetric(perEntry(patches.Load()), "patches/entry")
		b.ReportMetric(perEntry(rec.count.Load()), "events/entry")
		b.ReportMetric(perEntry(int64(reg.Requests())), "registry-requests/entry")
		fmt.Printf("\nplinth cold start (%d new BaseImages over %d digests, one loopback registry, scanning off)\n", entries, digests)
		fmt.Printf("  settings: --concurrency=%d --registry-rate-limit=%g --registry-burst=%d, API client QPS %g burst %d\n",
			concurrency, regOpts.RateLimit, regOpts.Burst, cfg.QPS, cfg.Burst)
		fmt.Printf("  all Ready after:        %6.1f s (created in %.1f s): %.0f entries/s\n", ready.Seconds(), created.Seconds(), float64(entries)/ready.Seconds())
		fmt.Printf("  status patches:         %6.2f per entry\n", perEntry(patches.Load()))
		fmt.Printf("  events:                 %6.2f per entry (%s)\n", perEntry(rec.count.Load()), rec.summary())
		fmt.Printf("  registry requests:      %6.2f per entry (%d manifest, %d blob, %d /v2/)\n\n",
			perEntry(int64(reg.Requests())), reg.TotalManifestRequests(), reg.BlobRequests(), reg.Pings())
	}
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
