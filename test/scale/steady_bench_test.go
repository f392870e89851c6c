package scale

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/testenv"
)

// steadyInterval is how often both controllers check an entry: plinth's
// rescanInterval and Flux's interval.
const steadyInterval = time.Minute

// fluxImagePolicies is the resource of Flux's ImagePolicies.
var fluxImagePolicies = schema.GroupVersionResource{Group: "image.toolkit.fluxcd.io", Version: "v1", Resource: "imagepolicies"}

// BenchmarkSteadyStateFlux measures what a catalog costs once it is
// up to date, for plinth and beside it for Flux's image-reflector-controller,
// both run as processes with their default flags on the same control plane
// and loopback registry. For each in turn (never both at once) it creates
// the entries of BenchmarkColdStart (1,000 by default) checked every
// minute, waits until all are Ready, lets the controller settle, then counts
// over a window (two intervals by default) the object writes a watch sees,
// the Events recorded, the registry requests by kind and the controller
// process's CPU time, and reads its resident memory at the end.
//
// A plinth entry is a BaseImage under one ImagePolicy with rescanInterval
// 1m, the operator started with --scan=false; a Flux entry is what
// reflects the same tag's digest: an ImageRepository (interval 1m) and an
// ImagePolicy selecting that tag with digestReflectionPolicy Always
// (interval 1m). PLINTH_BINARY names the operator binary (`make build`),
// PLINTH_FLUX_IRC Flux's (`make flux-irc`); without either the benchmark
// skips. PLINTH_BENCH_WINDOW and PLINTH_BENCH_SETTLE change the window and
// the settling time, PLINTH_BENCH_ENTRIES the number of entries. Run it
// once: -benchtime=1x.
func BenchmarkSteadyStateFlux(b *testing.B) {
	plinthBin, fluxBin := os.Getenv("PLINTH_BINARY"), os.Getenv("PLINTH_FLUX_IRC")
	if plinthBin == "" || fluxBin == "" {
		b.Skip("PLINTH_BINARY and PLINTH_FLUX_IRC must name the operator binary (`make build`) and Flux's image-reflector-controller (`make flux-irc`)")
	}
	for _, bin := range []string{plinthBin, fluxBin} {
		if _, err := os.Stat(bin); err != nil {
			b.Skipf("%v: build it with `make build` or `make flux-irc`", err)
		}
	}
	window := envDuration(b, "PLINTH_BENCH_WINDOW", 2*steadyInterval)
	settle := envDuration(b, "PLINTH_BENCH_SETTLE", 15*time.Second)
	f, kubeconfig := newFluxFixture(b)

	for b.Loop() {
		p := f.steadyPlinth(b, plinthBin, kubeconfig, settle, window)
		fl := f.steadyFlux(b, fluxBin, kubeconfig, settle, window)
		b.ReportMetric(p.perMinute(p.writes), "plinth-writes/min")
		b.ReportMetric(fl.perMinute(fl.writes), "flux-writes/min")
		b.ReportMetric(p.perMinute(p.events), "plinth-events/min")
		b.ReportMetric(fl.perMinute(fl.events), "flux-events/min")
		b.ReportMetric(p.perMinute(p.requests.total()), "plinth-requests/min")
		b.ReportMetric(fl.perMinute(fl.requests.total()), "flux-requests/min")
		b.ReportMetric(p.cpuPerMinute(), "plinth-cpu-s/min")
		b.ReportMetric(fl.cpuPerMinute(), "flux-cpu-s/min")
		f.printSteady(p, fl, filepath.Base(fluxBin))
	}
}

// steadyResult is what one controller did during the window.
type steadyResult struct {
	ready          time.Duration // cold start: from creating the entries to all Ready
	settle, window time.Duration
	writes, events int64
	writeSummary   string // writes by kind of object
	eventSummary   string
	requests       requestCounts
	cpu            time.Duration // user and system time of the process
	rss            int64         // resident memory at the window's end, bytes
	// The fewest and most manifest requests one entry's repository got.
	minManifests, maxManifests int
}

func (r steadyResult) perMinute(n int64) float64 { return float64(n) / r.window.Minutes() }

func (r steadyResult) cpuPerMinute() float64 { return r.cpu.Seconds() / r.window.Minutes() }

// steadyPlinth runs the operator binary on a new namespace holding one
// ImagePolicy and a BaseImage for every ref, and measures its steady state.
func (f *coldStartFixture) steadyPlinth(b *testing.B, bin, kubeconfig string, settle, window time.Duration) steadyResult {
	b.Helper()
	ctx := b.Context()
	c := f.client(b)
	ns := f.namespace(b, c, "steady-plinth")
	proc := startController(b, bin, kubeconfig, func(health, dir string) []string {
		return []string{"--scan=false", "--metrics-bind-address=0", "--health-probe-bind-address=" + health,
			"--cache-dir=" + dir, "--zap-log-level=error"}
	})
	defer proc.stop()
	dyn := f.dynamic(b)
	writes := []kindWrites{
		{"BaseImage", countWrites(b, dyn.Resource(catalogv1.GroupVersion.WithResource("baseimages")).Namespace(ns))},
		{"ImagePolicy", countWrites(b, dyn.Resource(catalogv1.GroupVersion.WithResource("imagepolicies")).Namespace(ns))},
	}

	if err := c.Create(ctx, &catalogv1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec: catalogv1.ImagePolicySpec{
			MaxAge:         &metav1.Duration{Duration: 720 * time.Hour},
			RescanInterval: &metav1.Duration{Duration: steadyInterval},
		}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	f.createBaseImages(b, c, ns)
	ready := f.waitReady(b, start, func() (int, error) {
		list, err := dyn.Resource(catalogv1.GroupVersion.WithResource("baseimages")).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, err
		}
		return countReady(list.Items), nil
	})
	r := f.measureSteady(b, proc, c, ns, writes, settle, window)
	r.ready = ready
	return r
}

// steadyFlux runs Flux's image-reflector-controller on a new namespace
// holding, for every ref, an ImageRepository and an ImagePolicy that
// reflects the digest of the ref's tag, and measures its steady state.
func (f *coldStartFixture) steadyFlux(b *testing.B, bin, kubeconfig string, settle, window time.Duration) steadyResult {
	b.Helper()
	ctx := b.Context()
	c := f.client(b)
	ns := f.namespace(b, c, "steady-flux")
	proc := startController(b, bin, kubeconfig, func(health, dir string) []string {
		return []string{"--metrics-addr=0", "--health-addr=" + health,
			"--storage-path=" + filepath.Join(dir, "data"), "--log-level=error"}
	})
	defer proc.stop()
	dyn := f.dynamic(b)
	repos, policies := dyn.Resource(imageRepositories).Namespace(ns), dyn.Resource(fluxImagePolicies).Namespace(ns)
	writes := []kindWrites{{"ImageRepository", countWrites(b, repos)}, {"ImagePolicy", countWrites(b, policies)}}

	interval := steadyInterval.String()
	start := time.Now()
	for i, ref := range f.refs {
		name := fmt.Sprintf("app-%04d", i)
		at := strings.LastIndex(ref, ":")
		repo := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "image.toolkit.fluxcd.io/v1",
			"kind":       "ImageRepository",
			"metadata":   map[string]any{"name": name, "namespace": ns},
			"spec":       map[string]any{"image": ref[:at], "interval": interval, "insecure": true},
		}}
		if _, err := repos.Create(ctx, repo, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		policy := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "image.toolkit.fluxcd.io/v1",
			"kind":       "ImagePolicy",
			"metadata":   map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{
				"imageRepositoryRef":     map[string]any{"name": name},
				"filterTags":             map[string]any{"pattern": "^" + regexp.QuoteMeta(ref[at+1:]) + "$"},
				"policy":                 map[string]any{"alphabetical": map[string]any{"order": "asc"}},
				"digestReflectionPolicy": "Always",
				"interval":               interval,
			},
		}}
		if _, err := policies.Create(ctx, policy, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	ready := f.waitReady(b, start, func() (int, error) {
		rl, err := repos.List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, err
		}
		pl, err := policies.List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, err
		}
		return min(countReady(rl.Items), countReady(pl.Items)), nil
	})
	r := f.measureSteady(b, proc, c, ns, writes, settle, window)
	r.ready = ready
	return r
}

// measureSteady waits settle, then counts what the controller does in the
// namespace for window.
func (f *coldStartFixture) measureSteady(b *testing.B, proc *controllerProcess, c client.Client, ns string,
	writes []kindWrites, settle, window time.Duration) steadyResult {
	b.Helper()
	time.Sleep(settle)
	loadWrites := func() []int64 {
		n := make([]int64, len(writes))
		for i, w := range writes {
			n[i] = w.count.Load()
		}
		return n
	}
	f.reg.ResetCounts()
	writes0, events0, requests0, cpu0 := loadWrites(), eventsByReason(b, c, ns), f.kinds.snapshot(), processCPU(b, proc.pid)
	time.Sleep(window)
	writes1, events1, requests1, cpu1 := loadWrites(), eventsByReason(b, c, ns), f.kinds.snapshot(), processCPU(b, proc.pid)
	r := steadyResult{settle: settle, window: window, requests: requests1.minus(requests0), cpu: cpu1 - cpu0,
		rss: processRSS(b, proc.pid)}
	byKind := map[string]int64{}
	for i, w := range writes {
		byKind[w.kind] = writes1[i] - writes0[i]
		r.writes += byKind[w.kind]
	}
	r.writeSummary = countSummary(byKind)
	byReason := map[string]int64{}
	for reason, n := range events1 {
		if d := n - events0[reason]; d != 0 {
			byReason[reason] = d
			r.events += d
		}
	}
	r.eventSummary = countSummary(byReason)
	r.minManifests = -1
	for _, ref := range f.refs {
		n := f.reg.ManifestRequests(strings.TrimPrefix(ref[:strings.LastIndex(ref, ":")], f.reg.Host+"/"))
		if r.minManifests < 0 || n < r.minManifests {
			r.minManifests = n
		}
		r.maxManifests = max(r.maxManifests, n)
	}
	return r
}

func (f *coldStartFixture) printSteady(p, fl steadyResult, fluxName string) {
	perEntry := func(r steadyResult, n int64) float64 {
		return float64(n) / float64(f.entries) / (r.window.Minutes() / steadyInterval.Minutes())
	}
	fmt.Printf("\nSteady state: plinth beside Flux's image-reflector-controller (%s)\n", fluxName)
	fmt.Printf("  %d entries over %d digests on one loopback registry, checked every %s; both run as processes with default flags\n",
		f.entries, f.digests, steadyInterval)
	fmt.Printf("  (plinth --scan=false; a Flux entry is an ImageRepository and an ImagePolicy reflecting the tag's digest),\n")
	fmt.Printf("  measured over %s after all were Ready and %s of settling\n\n", p.window, p.settle)
	row := func(name string, pv, fv float64) {
		fmt.Printf("  %-28s %10.1f %10.1f   %s\n", name, pv, fv, ratio(pv, fv))
	}
	fmt.Printf("  %-28s %10s %10s   %s\n", "per minute", "plinth", "Flux", "Flux ÷ plinth")
	row("object writes", p.perMinute(p.writes), fl.perMinute(fl.writes))
	row("events", p.perMinute(p.events), fl.perMinute(fl.events))
	row("registry requests", p.perMinute(p.requests.total()), fl.perMinute(fl.requests.total()))
	for _, k := range requestKindNames {
		row("  "+k.name, p.perMinute(p.requests[k.kind]), fl.perMinute(fl.requests[k.kind]))
	}
	row("controller CPU seconds", p.cpuPerMinute(), fl.cpuPerMinute())
	fmt.Printf("  %-28s %10.1f %10.1f\n", "  (% of one core)", p.cpuPerMinute()/60*100, fl.cpuPerMinute()/60*100)
	fmt.Printf("  %-28s %10.0f %10.0f   %s\n", "RSS at window end, MiB", float64(p.rss)/(1<<20), float64(fl.rss)/(1<<20),
		ratio(float64(p.rss), float64(fl.rss)))
	fmt.Printf("  %-28s %10.1f %10.1f\n", "cold start to all Ready, s", p.ready.Seconds(), fl.ready.Seconds())
	fmt.Printf("\n  object writes in the window: plinth %s, Flux %s\n", p.writeSummary, fl.writeSummary)
	fmt.Printf("  events in the window: plinth %s, Flux %s\n", p.eventSummary, fl.eventSummary)
	fmt.Printf("  per entry and interval: plinth %.2f registry requests (%.2f manifest HEADs), Flux %.2f\n",
		perEntry(p, p.requests.total()), perEntry(p, p.requests[kindManifestHead]), perEntry(fl, fl.requests.total()))
	fmt.Printf("  manifest requests of one entry in the window: plinth %d to %d, Flux %d to %d\n\n",
		p.minManifests, p.maxManifests, fl.minManifests, fl.maxManifests)
}

// ratio formats Flux ÷ plinth, or both figures when plinth's is zero.
func ratio(plinth, flux float64) string {
	switch {
	case plinth == 0 && flux == 0:
		return "both 0"
	case plinth == 0:
		return fmt.Sprintf("0 vs %.1f", flux)
	default:
		return fmt.Sprintf("%.2f", flux/plinth)
	}
}

// writeKubeConfig writes an admin kubeconfig of the control plane for the
// controller processes and returns its path.
func (f *coldStartFixture) writeKubeConfig(b *testing.B) string {
	b.Helper()
	kubeconfig, err := f.env.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

func (f *coldStartFixture) client(b *testing.B) client.Client {
	b.Helper()
	c, err := client.New(f.env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func (f *coldStartFixture) dynamic(b *testing.B) *dynamic.DynamicClient {
	b.Helper()
	dyn, err := dynamic.NewForConfig(f.env.Config)
	if err != nil {
		b.Fatal(err)
	}
	return dyn
}

// namespace creates a new namespace whose name starts with prefix.
func (f *coldStartFixture) namespace(b *testing.B, c client.Client, prefix string) string {
	b.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	if err := c.Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	return ns
}

// kindWrites counts the writes to the objects of one kind.
type kindWrites struct {
	kind  string
	count *writeCount
}

// countReady counts the objects whose Ready condition is True.
func countReady(items []unstructured.Unstructured) int {
	n := 0
	for _, item := range items {
		if conditionTrue(item, "Ready") {
			n++
		}
	}
	return n
}

// requestKind is a kind of registry request.
type requestKind int

const (
	kindManifestHead requestKind = iota
	kindManifestGet
	kindBlob
	kindPing
	kindTagList
	kindOther
	numRequestKinds
)

// requestKindNames names the kinds of registry request in the order they
// are printed.
var requestKindNames = []struct {
	kind requestKind
	name string
}{
	{kindManifestHead, "manifest HEAD"},
	{kindManifestGet, "manifest GET"},
	{kindBlob, "blob GET"},
	{kindPing, "/v2/ ping"},
	{kindTagList, "tag list"},
	{kindOther, "other"},
}

// requestCounts are registry requests counted by kind.
type requestCounts [numRequestKinds]int64

func (c requestCounts) total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

func (c requestCounts) minus(o requestCounts) requestCounts {
	for i := range c {
		c[i] -= o[i]
	}
	return c
}

// requestKinds counts a registry's requests by kind; it is safe for
// concurrent use.
type requestKinds struct {
	n [numRequestKinds]atomic.Int64
}

// count is registry middleware that counts each request by its kind.
func (k *requestKinds) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		k.n[classify(req)].Add(1)
		next.ServeHTTP(w, req)
	})
}

func (k *requestKinds) snapshot() requestCounts {
	var c requestCounts
	for i := range c {
		c[i] = k.n[i].Load()
	}
	return c
}

// classify tells the kind of an OCI distribution API request.
func classify(req *http.Request) requestKind {
	p := req.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return kindPing
	case strings.HasSuffix(p, "/tags/list"):
		return kindTagList
	case strings.Contains(p, "/manifests/") && req.Method == http.MethodHead:
		return kindManifestHead
	case strings.Contains(p, "/manifests/") && req.Method == http.MethodGet:
		return kindManifestGet
	case strings.Contains(p, "/blobs/") && (req.Method == http.MethodGet || req.Method == http.MethodHead):
		return kindBlob
	default:
		return kindOther
	}
}

// processCPU returns the user and system CPU time a process has used, all
// its threads together, from /proc/<pid>/stat.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("reading the controller's CPU time: %v", err)
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields after its closing one. utime and stime are fields 14
	// and 15.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		b.Fatalf("/proc/%d/stat: too few fields: %q", pid, s)
	}
	var ticks int64
	for _, field := range fields[11:13] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / time.Duration(clockTicks(b))
}

// clockTicks returns the kernel's clock ticks per second, the unit of the
// CPU times in /proc.
func clockTicks(b *testing.B) int64 {
	b.Helper()
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100 // USER_HZ on Linux
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("getconf CLK_TCK: %q", out)
	}
	return n
}

// processRSS returns a process's resident memory, from /proc/<pid>/status.
func processRSS(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("reading the controller's memory: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("/proc/%d/status: VmRSS: %v", pid, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("/proc/%d/status has no VmRSS", pid)
	return 0
}

func envDuration(b *testing.B, key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s: want a positive duration such as 2m, got %q", key, v)
	}
	return d
}
