package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// The manager stays under its container's memory limit while it scans two
// images of about 1 GiB at once (--scan-concurrency 2, the default), with
// the GOMEMLIMIT its Deployment sets. The operator binary runs as its own
// process, and its peak resident set is read from the kernel. It takes
// about a minute, and 2.5 GiB of memory for the registry it fills.
func TestOperatorScansLargeImagesWithinItsMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("scans two 1 GiB images")
	}
	run := scanLargeImages(t, build(t, "PLINTH_BINARY", ".", "plinth"))
	t.Logf("peak RSS %s of the %s limit (GOMEMLIMIT %s; sampled peaks: anonymous %s, file-backed %s); two images of %s each scanned at once in %s",
		mebibytes(run.peakRSS), mebibytes(run.limit), run.goMemLimit, mebibytes(run.peakAnon), mebibytes(run.peakFile),
		mebibytes(run.imageBytes), run.scanTime.Round(time.Second))
	if run.peakRSS >= run.limit {
		t.Errorf("the operator's peak RSS, %s, is not under the Deployment's memory limit, %s: in its container the kernel would have had to reclaim its pages or kill it",
			mebibytes(run.peakRSS), mebibytes(run.limit))
	}
}

// BenchmarkScanMemory prints the operator's peak RSS while it scans two
// images of about 1 GiB at once under the Deployment's GOMEMLIMIT, and,
// when PLINTH_TRIVY_CLI names a trivy CLI, that CLI's peak RSS scanning one
// of them. Run it once: -benchtime=1x.
func BenchmarkScanMemory(b *testing.B) {
	operator := os.Getenv("PLINTH_BINARY")
	if operator == "" {
		b.Skip("set PLINTH_BINARY to the operator binary (make build)")
	}
	for b.Loop() {
		run := scanLargeImages(b, operator)
		b.ReportMetric(float64(run.peakRSS)/float64(mib), "peak-rss-MiB")
		b.ReportMetric(run.scanTime.Seconds(), "scan-s")
		fmt.Printf("\nplinth memory benchmark: two images of %s (uncompressed layers) scanned at once, --scan-concurrency 2\n",
			mebibytes(run.imageBytes))
		fmt.Printf("  operator peak RSS:          %s (container limit %s, GOMEMLIMIT %s)\n",
			mebibytes(run.peakRSS), mebibytes(run.limit), run.goMemLimit)
		fmt.Printf("  of which, sampled peaks:    %s anonymous (the Go heap and runtime), %s file-backed (the binary's pages)\n",
			mebibytes(run.peakAnon), mebibytes(run.peakFile))
		fmt.Printf("  both scans done in:         %s\n", run.scanTime.Round(100*time.Millisecond))
		cli := os.Getenv("PLINTH_TRIVY_CLI")
		if cli == "" {
			fmt.Printf("  trivy CLI:                  not run (set PLINTH_TRIVY_CLI)\n\n")
			continue
		}
		start := time.Now()
		rss := trivyPeakRSS(b, cli, run.dbRef, run.images[0])
		took := time.Since(start)
		b.ReportMetric(float64(rss)/float64(mib), "trivy-cli-peak-rss-MiB")
		fmt.Printf("  trivy CLI, one of the images (--scanners vuln,secret): peak RSS %s in %s; the operator scanning two at once used %.2fx that\n\n",
			mebibytes(rss), took.Round(100*time.Millisecond), float64(run.peakRSS)/float64(rss))
	}
}

// largeScanRun is what one run of the operator over the large images
// measured.
type largeScanRun struct {
	goMemLimit string
	limit      int64
	peakRSS    int64 // VmHWM: anonymous and file-backed pages
	peakAnon   int64 // the most RssAnon seen while sampling
	peakFile   int64 // the most RssFile seen while sampling
	scanTime   time.Duration
	imageBytes int64
	dbRef      string
	images     []string // the scanned images, by digest
}

// scanLargeImages pushes two large images and a vulnerability DB to a
// loopback registry, runs the operator binary against a local control
// plane the way its Deployment runs it, catalogues both images and waits
// until both are scanned. It fails unless both scans ran at the same time
// and the operator kept running.
func scanLargeImages(tb testing.TB, operator string) *largeScanRun {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tb.Skip("peak RSS is read from /proc")
	}
	ctx := context.Background()
	run := &largeScanRun{}
	run.goMemLimit, run.limit = deploymentMemory(tb)

	// The registry holds both images in memory, about 2.2 GiB: keep the
	// collector from letting this process grow to twice that meanwhile.
	prev := debug.SetMemoryLimit(3 << 30)
	tb.Cleanup(func() { debug.SetMemoryLimit(prev) })

	reg := registrytest.New(tb)
	dbDir := tb.TempDir()
	if _, err := vulndbtest.Build(dbDir, largeImageAdvisories, time.Now().UTC().Add(-time.Hour).Truncate(time.Second)); err != nil {
		tb.Fatal(err)
	}
	run.dbRef = reg.Host + "/aquasec/trivy-db:2"
	if _, err := vulndbtest.Push(ctx, run.dbRef, dbDir); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	for seed := range uint64(2) {
		img, size, err := largeImage(seed + 1)
		if err != nil {
			tb.Fatal(err)
		}
		repo := fmt.Sprintf("%s/base/engine-%d", reg.Host, seed+1)
		d, err := imagetest.PushImage(ctx, repo+":1", img)
		if err != nil {
			tb.Fatal(err)
		}
		run.images = append(run.images, repo+"@"+d)
		run.imageBytes = size
	}
	tb.Logf("built and pushed two images of %s in %s", mebibytes(run.imageBytes), time.Since(start).Round(time.Second))

	env, err := testenv.Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = env.Stop() })
	kc, err := env.KubeConfig()
	if err != nil {
		tb.Fatal(err)
	}
	kubeconfig := filepath.Join(tb.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		tb.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		tb.Fatal(err)
	}
	const ns = "catalog"
	for _, n := range []string{"plinth-system", ns} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := c.Create(ctx, &catalogv1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "large"},
		Spec: catalogv1.ImagePolicySpec{AllowedRegistries: []string{reg.Host}}}); err != nil {
		tb.Fatal(err)
	}

	// As the Deployment runs it: leader election, the cache on its own
	// volume (XDG_CACHE_HOME too), /tmp another. Metrics and probes are
	// off: nothing here calls them.
	cacheDir, tmpDir := tb.TempDir(), tb.TempDir()
	var out syncBuffer
	cmd := exec.Command(operator, "--leader-elect", "--leader-election-namespace=plinth-system", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--scan-concurrency=2", "--cache-dir="+cacheDir, "--vuln-db-repository="+run.dbRef, "--vuln-db-insecure",
		"--sigstore-tuf-mirror=")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE=plinth-system", "GOMEMLIMIT="+run.goMemLimit,
		"XDG_CACHE_HOME="+cacheDir, "TMPDIR="+tmpDir, "HOME="+tb.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	output := func() string { return tail(out.String(), 16<<10) }
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)

	names := []string{"engine-1", "engine-2"}
	start = time.Now()
	for i, n := range names {
		if err := c.Create(ctx, &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n},
			Spec: catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(strings.TrimSuffix(run.images[i], "@"+digestOf(run.images[i])) + ":1"),
				PolicyRef: catalogv1.LocalObjectReference{Name: "large"}}}); err != nil {
			tb.Fatal(err)
		}
	}

	// Both scanning at the same poll shows the scans overlapped.
	overlapped := false
	var last [2]catalogv1.BaseImage
	deadline := time.Now().Add(15 * time.Minute)
	for {
		select {
		case <-exited:
			tb.Fatalf("the operator exited while scanning: %v\n%s", exitErr, output())
		default:
		}
		done, scanning := 0, 0
		for i, n := range names {
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, &last[i]); err != nil {
				continue
			}
			st := last[i].Status
			if r := apimeta.FindStatusCondition(st.Conditions, catalogv1.ReconcilingCondition); r != nil &&
				r.Status == metav1.ConditionTrue && strings.HasPrefix(r.Message, "Scanning ") {
				scanning++
			}
			if apimeta.IsStatusConditionTrue(st.Conditions, catalogv1.ScannedCondition) && st.ScannedDigest == digestOf(run.images[i]) {
				done++
			}
		}
		overlapped = overlapped || scanning == len(names)
		anon, file := rss(status)
		run.peakAnon, run.peakFile = max(run.peakAnon, anon), max(run.peakFile, file)
		if done == len(names) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the images were not both scanned in %s\nstatus: %+v\n%+v\n%s", time.Since(start).Round(time.Second),
				last[0].Status, last[1].Status, output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	run.scanTime = time.Since(start)
	run.peakRSS = hwm(status)
	select {
	case <-exited:
		tb.Fatalf("the operator exited: %v\n%s", exitErr, output())
	default:
	}
	if run.peakRSS == 0 {
		tb.Fatalf("no VmHWM in %s", status)
	}
	if !overlapped {
		tb.Errorf("the two scans never ran at the same time with --scan-concurrency=2\n%s", output())
	}
	for i := range last {
		v := last[i].Status.Vulnerabilities
		if v == nil || v.Critical.Total == 0 {
			tb.Errorf("%s: the critical openssl flaw was not found: %+v", names[i], v)
		}
		if h := last[i].Status.Hardening; h == nil || h.SecretsSkipped == 0 {
			tb.Errorf("%s: the large logs are not counted as skipped by the secret scanner: %+v", names[i], h)
		}
	}

	// Trivy copied the 104 MiB logs to temporary files while it read them:
	// into a directory on the cache volume that the operator owns, not
	// TMPDIR, and each went away with its analysis. Stopped, the operator
	// removes its temporary directory.
	scanTmp := filepath.Join(cacheDir, "tmp")
	if files := filesUnder(tb, tmpDir); len(files) != 0 {
		tb.Errorf("the scans left files in TMPDIR: %v", files)
	}
	if dirs, _ := filepath.Glob(filepath.Join(scanTmp, "trivy-*")); len(dirs) == 0 {
		tb.Errorf("no temporary directory of the scans under %s: the large files were copied elsewhere", scanTmp)
	}
	if files := filesUnder(tb, scanTmp); len(files) != 0 {
		tb.Errorf("temporary files left after both scans: %v", files)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		tb.Fatalf("the operator did not stop within 30s of SIGTERM\n%s", output())
	}
	if entries, err := os.ReadDir(scanTmp); err != nil || len(entries) != 0 {
		tb.Errorf("the stopped operator left %d entries in %s (%v)", len(entries), scanTmp, err)
	}
	return run
}

// filesUnder lists the regular files under dir.
func filesUnder(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// deploymentMemory reads the manager container of config/manager's
// Deployment: its GOMEMLIMIT and its memory limit in bytes.
func deploymentMemory(tb testing.TB) (goMemLimit string, limit int64) {
	tb.Helper()
	path := filepath.Join(testenv.Root(), "config", "manager", "manager.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name != "manager" {
				continue
			}
			for _, e := range c.Env {
				if e.Name == "GOMEMLIMIT" {
					goMemLimit = e.Value
				}
			}
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
				limit = q.Value()
			}
		}
	}
	if goMemLimit == "" || limit == 0 {
		tb.Fatalf("%s: the manager container has no GOMEMLIMIT (%q) or memory limit (%d)", path, goMemLimit, limit)
	}
	return goMemLimit, limit
}

// trivyPeakRSS scans image with the trivy CLI, as plinth does (vulnerabilities
// and secrets, offline but for the loopback DB), and returns its peak RSS.
func trivyPeakRSS(tb testing.TB, cli, dbRepo, image string) int64 {
	tb.Helper()
	cmd := exec.Command(cli, "image", "--db-repository", dbRepo, "--insecure", "--skip-java-db-update",
		"--scanners", "vuln,secret", "--format", "json", "--quiet", "--cache-dir", tb.TempDir(), image)
	cmd.Env = append(os.Environ(), "HOME="+tb.TempDir(), "TMPDIR="+tb.TempDir(), "TRIVY_NO_PROGRESS=true", "TRIVY_DISABLE_VEX_NOTICE=true")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var peak int64
	for {
		select {
		case err := <-done:
			if err != nil {
				tb.Fatalf("trivy CLI: %v\n%s", err, tail(out.String(), 8<<10))
			}
			return peak
		case <-time.After(20 * time.Millisecond):
			// VmHWM is the peak so far; the last read before the
			// process is reaped is the peak.
			peak = max(peak, hwm(status))
		}
	}
}

// rss reads the RssAnon and RssFile lines of a /proc status file, in
// bytes.
func rss(status string) (anon, file int64) {
	return statusField(status, "RssAnon:"), statusField(status, "RssFile:")
}

// hwm reads the VmHWM line (peak resident set) of a /proc status file, in
// bytes; 0 when unreadable.
func hwm(status string) int64 { return statusField(status, "VmHWM:") }

// statusField reads a line of kilobytes of a /proc status file, in bytes;
// 0 when unreadable.
func statusField(status, field string) int64 {
	data, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func digestOf(ref string) string {
	_, d, _ := strings.Cut(ref, "@")
	return d
}

func mebibytes(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/float64(mib)) }

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
