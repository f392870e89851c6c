package scale

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/plinth-dev/plinth/test/testenv"
)

// fluxModule is the Go module of Flux's image-reflector-controller;
// hack/flux-irc/go.mod pins its version.
const fluxModule = "github.com/fluxcd/image-reflector-controller"

var imageRepositories = schema.GroupVersionResource{Group: "image.toolkit.fluxcd.io", Version: "v1", Resource: "imagerepositories"}

// BenchmarkColdStartFlux runs the cold start of BenchmarkColdStart and then
// the same catalog under Flux's image-reflector-controller, on the same
// control plane and registry: 1,000 ImageRepositories (interval 1m) for the
// same repositories, created at once, timed until all are Ready. Both run
// with their default flags. PLINTH_FLUX_IRC names the controller binary
// (`make flux-irc` builds it); the CRDs come from the module cache, at the
// version hack/flux-irc/go.mod requires. Run it once: -benchtime=1x.
func BenchmarkColdStartFlux(b *testing.B) {
	bin := os.Getenv("PLINTH_FLUX_IRC")
	if bin == "" {
		b.Skip("PLINTH_FLUX_IRC is not set: build Flux's image-reflector-controller with `make flux-irc` and point PLINTH_FLUX_IRC at it")
	}
	if _, err := os.Stat(bin); err != nil {
		b.Skipf("PLINTH_FLUX_IRC: %v: build it with `make flux-irc`", err)
	}
	f, kubeconfigPath := newFluxFixture(b)

	for b.Loop() {
		p := f.runPlinth(b)
		fl := f.runFlux(b, bin, kubeconfigPath)
		ratio := fl.ready.Seconds() / p.ready.Seconds()
		b.ReportMetric(p.ready.Seconds(), "plinth-s-to-ready")
		b.ReportMetric(fl.ready.Seconds(), "flux-s-to-ready")
		b.ReportMetric(ratio, "flux/plinth")
		f.printPlinth(p)
		fmt.Printf("Flux image-reflector-controller cold start (%s; %d new ImageRepositories, same registry and control plane)\n", filepath.Base(bin), f.entries)
		fmt.Printf("  settings: default flags (--concurrent=4), interval 1m, insecure\n")
		fmt.Printf("  all Ready after:        %6.1f s (created in %.1f s): %.0f entries/s\n", fl.ready.Seconds(), fl.created.Seconds(), float64(f.entries)/fl.ready.Seconds())
		fmt.Printf("  object writes:          %6.2f per entry (changes a watch saw)\n", f.perEntry(fl.writes))
		fmt.Printf("  events:                 %6.2f per entry (%s)\n", f.perEntry(fl.events), fl.eventSummary)
		fmt.Printf("  registry requests:      %6.2f per entry (%s)\n", f.perEntry(fl.requests), fl.requestKinds)
		fmt.Printf("  time to all Ready, Flux ÷ plinth: %.2f\n\n", ratio)
	}
}

// newFluxFixture is a cold start fixture whose control plane also serves
// Flux's CRDs, with the path of an admin kubeconfig for the controllers
// the benchmark runs as processes.
func newFluxFixture(b *testing.B) (*coldStartFixture, string) {
	b.Helper()
	crds, err := fluxCRDs()
	if err != nil {
		b.Fatal(err)
	}
	f := newColdStartFixture(b)
	if _, err := envtest.InstallCRDs(f.env.Config, envtest.CRDInstallOptions{Paths: []string{crds}, ErrorIfPathMissing: true}); err != nil {
		b.Fatalf("installing Flux's CRDs from %s: %v", crds, err)
	}
	return f, f.writeKubeConfig(b)
}

// fluxCRDs returns the directory of the CRDs that ship with the
// image-reflector-controller version hack/flux-irc/go.mod requires,
// downloading the module into the module cache if needed.
func fluxCRDs() (string, error) {
	dir := filepath.Join(testenv.Root(), "hack", "flux-irc")
	cmd := exec.Command("go", "mod", "download", "-json", fluxModule)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("locating %s in the module cache: %w", fluxModule, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("reading go mod download's answer: %w", err)
	}
	if mod.Error != "" {
		return "", fmt.Errorf("downloading %s: %s", fluxModule, mod.Error)
	}
	return filepath.Join(mod.Dir, "config", "crd", "bases"), nil
}

// runFlux runs the image-reflector-controller binary against the control
// plane, creates an ImageRepository for every entry in a new namespace and
// waits until all are Ready.
func (f *coldStartFixture) runFlux(b *testing.B, bin, kubeconfig string) coldStartResult {
	b.Helper()
	ctx := b.Context()
	ns := fmt.Sprintf("flux-%d", time.Now().UnixNano())
	c, err := client.New(f.env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(f.env.Config)
	if err != nil {
		b.Fatal(err)
	}
	repos := dyn.Resource(imageRepositories).Namespace(ns)

	stop := startFlux(b, bin, kubeconfig)
	defer stop()
	writes := countWrites(b, repos)

	f.reg.ResetCounts()
	start := time.Now()
	for i, ref := range f.refs {
		repo := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "image.toolkit.fluxcd.io/v1",
			"kind":       "ImageRepository",
			"metadata":   map[string]any{"name": fmt.Sprintf("app-%04d", i), "namespace": ns},
			// The image without its tag: Flux scans a repository's tags.
			"spec": map[string]any{"image": ref[:strings.LastIndex(ref, ":")], "interval": "1m", "insecure": true},
		}}
		if _, err := repos.Create(ctx, repo, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	r := coldStartResult{created: time.Since(start)}
	r.ready = f.waitReady(b, start, func() (int, error) {
		list, err := repos.List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, item := range list.Items {
			if conditionTrue(item, "Ready") {
				n++
			}
		}
		return n, nil
	})
	time.Sleep(2 * time.Second)
	stop()
	r.writes = writes.Load()
	r.requests, r.requestKinds = int64(f.reg.Requests()), f.requestKinds()
	r.events, r.eventSummary = countEvents(b, c, ns)
	return r
}

// startFlux starts the controller with its default flags but for local
// ports and storage, waits until it reports ready and returns a function
// that stops it (safe to call more than once).
func startFlux(b *testing.B, bin, kubeconfig string) (stop func()) {
	b.Helper()
	return startController(b, bin, kubeconfig, func(health, dir string) []string {
		return []string{"--metrics-addr=0", "--health-addr=" + health,
			"--storage-path=" + filepath.Join(dir, "data"), "--log-level=error"}
	}).stop
}

// controllerProcess is a controller running as a process of its own.
type controllerProcess struct {
	pid  int
	log  string // its output
	stop func() // safe to call more than once
}

// startController runs a controller binary against the control plane of
// kubeconfig, with the flags args returns for a free loopback health
// address (serving /readyz) and a private directory, and waits until it
// reports ready.
func startController(b *testing.B, bin, kubeconfig string, args func(health, dir string) []string) *controllerProcess {
	b.Helper()
	health := freePort(b)
	dir := b.TempDir()
	logPath := filepath.Join(dir, "controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args(health, dir)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUNTIME_NAMESPACE=") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "KUBECONFIG="+kubeconfig) // RUNTIME_NAMESPACE unset: all namespaces
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = logFile.Close() }()
	var stopped atomic.Bool
	p := &controllerProcess{pid: cmd.Process.Pid, log: logPath}
	p.stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		<-exited
	}
	b.Cleanup(p.stop)

	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-exited:
			stopped.Store(true)
			b.Fatalf("%s exited before it was ready: %v\n%s", bin, err, tail(logPath))
		default:
		}
		resp, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			b.Fatalf("%s not ready after a minute\n%s", bin, tail(logPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countWrites counts the changes to the objects of a resource in a namespace
// that a watch sees, creations aside, until the benchmark ends. The watch
// resumes where it was when the API server closes it, as it does at times
// under load; if it cannot, Load fails the benchmark rather than report a
// short count.
func countWrites(b *testing.B, objects dynamic.ResourceInterface) *writeCount {
	b.Helper()
	ctx := b.Context()
	list, err := objects.List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		b.Fatal(err)
	}
	w, err := watchtools.NewRetryWatcherWithContext(ctx, list.GetResourceVersion(), &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return objects.Watch(ctx, opts)
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	c := &writeCount{b: b}
	go func() {
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Modified:
				c.n.Add(1)
			case watch.Error:
				msg := apierrors.FromObject(ev.Object).Error()
				c.lost.Store(&msg)
			}
		}
	}()
	return c
}

// writeCount is the number of writes a watch saw.
type writeCount struct {
	b    *testing.B
	n    atomic.Int64
	lost atomic.Pointer[string] // why the watch ended, if it did
}

// Load returns the number of writes seen so far; it fails the benchmark if
// the watch ended.
func (c *writeCount) Load() int64 {
	c.b.Helper()
	if msg := c.lost.Load(); msg != nil {
		c.b.Fatalf("counting object writes: the watch ended: %s", *msg)
	}
	return c.n.Load()
}

// countEvents counts the Kubernetes events recorded in a namespace, a
// repeated event as often as it happened, and sums them by reason.
func countEvents(b *testing.B, c client.Client, ns string) (int64, string) {
	b.Helper()
	byReason := eventsByReason(b, c, ns)
	var total int64
	for _, n := range byReason {
		total += n
	}
	return total, countSummary(byReason)
}

// eventsByReason counts the Kubernetes events recorded in a namespace by
// reason, a repeated event as often as it happened.
func eventsByReason(b *testing.B, c client.Client, ns string) map[string]int64 {
	b.Helper()
	var list corev1.EventList
	if err := c.List(b.Context(), &list, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	byReason := map[string]int64{}
	for _, ev := range list.Items {
		n := max(int64(ev.Count), 1)
		if ev.Series != nil {
			n = max(n, int64(ev.Series.Count))
		}
		byReason[ev.Reason] += n
	}
	return byReason
}

// countSummary formats counts by name, such as an event reason, sorted by
// name.
func countSummary(byName map[string]int64) string {
	names := make([]string, 0, len(byName))
	for name, n := range byName {
		names = append(names, fmt.Sprintf("%s:%d", name, n))
	}
	sort.Strings(names)
	return "map[" + strings.Join(names, " ") + "]"
}

// conditionTrue reports whether an unstructured object's status has the
// condition of that type with status True.
func conditionTrue(obj unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ {
			return m["status"] == "True"
		}
	}
	return false
}

func freePort(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// tail returns the last lines of a log file for a failure message.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
