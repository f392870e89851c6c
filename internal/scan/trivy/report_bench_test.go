package trivy

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/plinth-dev/plinth/internal/scan"
	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// BenchmarkReport measures what `make bench` prints: an in-process scan
// against the trivy CLI on the same images and DB, the re-evaluation of a
// catalog after a DB update with and without the layer cache, the scans a
// restart costs, and peak memory. Run it once: -benchtime=1x.
func BenchmarkReport(b *testing.B) {
	const catalog = 20
	for b.Loop() {
		advs := []vulndbtest.Advisory{muslCVE,
			{ID: "CVE-2099-0003", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "1.3.1-r3", Severity: "HIGH"}}
		e := newEnv(b, advs)
		var digests []name.Digest
		for i := range catalog {
			img := alpine(b, "",
				imagetest.Package{Name: "musl", Version: "1.2.5-r0"},
				imagetest.Package{Name: "zlib", Version: "1.3.1-r2"},
				imagetest.Package{Name: "busybox", Version: "1.37.0-r" + strconv.Itoa(i)})
			digests = append(digests, e.push(fmt.Sprintf("bench/img%02d", i), img))
		}

		// First scans, in-process, each of a new digest with new layers.
		start := time.Now()
		for _, d := range digests {
			e.mustScan(d)
		}
		inproc := time.Since(start) / catalog

		// The trivy CLI on the same images, when built.
		var cli, cliWarm time.Duration
		var cliRSS int64
		const runs = 5
		if path := os.Getenv("PLINTH_TRIVY_CLI"); path != "" {
			for _, d := range digests[:runs] {
				t0 := time.Now()
				rss := runCLIOnce(b, path, e.dbRepo, d.String(), b.TempDir())
				cli += time.Since(t0)
				cliRSS = max(cliRSS, rss)
			}
			cli /= runs
			// Warm: the DB and the image's layers already in the CLI's
			// cache, as for a re-evaluation.
			for _, d := range digests[:runs] {
				dir := b.TempDir()
				runCLIOnce(b, path, e.dbRepo, d.String(), dir)
				t0 := time.Now()
				runCLIOnce(b, path, e.dbRepo, d.String(), dir, "--skip-db-update")
				cliWarm += time.Since(t0)
			}
			cliWarm /= runs
		}

		// A DB update: every digest is re-evaluated; layers come from the
		// layer cache.
		e.publishDB(append(advs, vulndbtest.Advisory{ID: "CVE-2099-0009", Distro: vulndbtest.Alpine322, Package: "busybox", Severity: "LOW"}), dbBuilt2)
		e.update()
		before := e.scanner.Stats()
		reqs := e.reg.Requests()
		start = time.Now()
		for _, d := range digests {
			e.mustScan(d)
		}
		warm := time.Since(start)
		warmRequests := e.reg.Requests() - reqs
		warmStats := e.scanner.Stats()

		// The same without a layer cache: a scanner on an empty cache
		// directory.
		cold, err := NewScanner(Options{DB: e.db, CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		for _, d := range digests {
			if _, err := cold.Scan(b.Context(), scan.Request{Image: d, Transport: e.counter}); err != nil {
				b.Fatal(err)
			}
		}
		coldTime := time.Since(start)

		// A restart under the same DB: no scan at all.
		e.restart()
		for _, d := range digests {
			e.mustScan(d)
		}
		restartScans := e.scanner.Stats().Scans

		peak := peakRSS()
		b.ReportMetric(float64(inproc.Microseconds())/1000, "inproc-ms/scan")
		b.ReportMetric(float64(warm.Microseconds())/1000, "dbupdate-warm-ms")
		b.ReportMetric(float64(coldTime.Microseconds())/1000, "dbupdate-cold-ms")
		b.ReportMetric(float64(restartScans), "restart-scans")
		b.ReportMetric(float64(peak)/(1<<20), "peak-rss-MiB")
		fmt.Printf("\nplinth scan benchmark (%d Alpine images, loopback registry, DB built by the test)\n", catalog)
		fmt.Printf("  in-process scan, new digest:            %8.1f ms/image\n", ms(inproc))
		if cli > 0 {
			b.ReportMetric(float64(cli.Microseconds())/1000, "cli-ms/scan")
			b.ReportMetric(float64(cli)/float64(inproc), "cli/inproc")
			fmt.Printf("  trivy CLI, same images and DB:          %8.1f ms/image (%.1fx the in-process time, peak RSS %.1f MiB per run)\n",
				ms(cli), float64(cli)/float64(inproc), float64(cliRSS)/(1<<20))
		} else {
			fmt.Printf("  trivy CLI:                              not run (set PLINTH_TRIVY_CLI)\n")
		}
		fmt.Printf("  re-evaluation after a DB update, layer cache:    %8.1f ms for %d images, %d layer downloads, %d registry requests\n",
			ms(warm), catalog, warmStats.LayerDownloads-before.LayerDownloads, warmRequests)
		reeval := warm / catalog
		b.ReportMetric(float64(reeval.Microseconds())/1000, "reeval-ms/image")
		if cliWarm > 0 {
			b.ReportMetric(float64(cliWarm.Microseconds())/1000, "cli-warm-ms/scan")
			b.ReportMetric(float64(reeval)/float64(cliWarm), "reeval/cli-warm")
			fmt.Printf("  re-evaluation per image:                 %8.2f ms = %.3fx a warm trivy CLI scan of it (%.1f ms, DB and layers cached)\n",
				ms(reeval), float64(reeval)/float64(cliWarm), ms(cliWarm))
		}
		fmt.Printf("  re-evaluation after a DB update, no layer cache: %8.1f ms for %d images\n", ms(coldTime), catalog)
		fmt.Printf("  scans after a restart under the same DB:  %d\n", restartScans)
		fmt.Printf("  peak RSS of the benchmark process:        %.1f MiB\n\n", float64(peak)/(1<<20))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runCLIOnce scans image with the trivy CLI and returns its peak RSS, read
// from /proc while it runs (rusage would count this process's memory too:
// Linux carries the high-water mark across fork and exec).
func runCLIOnce(b *testing.B, cli, dbRepo, image, cacheDir string, args ...string) int64 {
	b.Helper()
	cmd := exec.Command(cli, slices.Concat([]string{"image", "--db-repository", dbRepo, "--insecure", "--skip-java-db-update",
		"--scanners", "vuln", "--format", "json", "--quiet", "--cache-dir", cacheDir}, args, []string{image})...)
	cmd.Env = append(os.Environ(), "HOME="+b.TempDir(), "TRIVY_NO_PROGRESS=true", "TRIVY_DISABLE_VEX_NOTICE=true")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for {
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("trivy CLI: %v\n%s", err, out.String())
			}
			return peak
		case <-time.After(5 * time.Millisecond):
			if v := hwm(status); v > peak {
				peak = v
			}
		}
	}
}

// peakRSS returns this process's peak resident set size in bytes.
func peakRSS() int64 { return hwm("/proc/self/status") }

// hwm reads the VmHWM line of a /proc status file, in bytes; 0 when
// unreadable.
func hwm(status string) int64 {
	data, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
