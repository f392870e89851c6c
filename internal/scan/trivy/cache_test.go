package trivy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"

	"github.com/plinth-dev/plinth/internal/scan"
)

func TestRescanUnderNewDBReusesLayers(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	img := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r1"}, imagetest.Package{Name: "zlib", Version: "1.3.1-r2"})
	d := e.push("base/alpine", img)
	layers := layerDigests(t, img)

	r1 := e.mustScan(d)
	if len(r1.Findings) != 0 {
		t.Fatalf("first scan findings: %+v", r1.Findings)
	}
	if got := e.counter.gets(layers...); got != 1 {
		t.Fatalf("first scan fetched layers %d times, want 1", got)
	}

	// Same DB: answered from the cache, no registry traffic at all.
	before := e.scanner.Stats()
	e.mustScan(d)
	if s := e.scanner.Stats(); s.Scans != before.Scans || s.CacheHits != before.CacheHits+1 {
		t.Errorf("repeat scan: stats %+v, before %+v", s, before)
	}

	// A new DB disclosing a zlib CVE: re-evaluated without downloading
	// the layer again.
	e.publishDB([]vulndbtest.Advisory{muslCVE, {ID: "CVE-2099-0003", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "1.3.1-r3", Severity: "HIGH"}}, dbBuilt2)
	e.update()
	r2 := e.mustScan(d)
	if r2.DBVersion == r1.DBVersion {
		t.Fatalf("DB version did not change: %q", r2.DBVersion)
	}
	if len(r2.Findings) != 1 || r2.Findings[0].ID != "CVE-2099-0003" {
		t.Errorf("re-scan findings: %+v", r2.Findings)
	}
	if got := e.counter.gets(layers...); got != 1 {
		t.Errorf("layers fetched %d times in all, want 1 (re-scan must use the layer cache)", got)
	}
	if s := e.scanner.Stats(); s.LayerDownloads != 1 || s.Scans != 2 {
		t.Errorf("stats %+v, want 1 layer download and 2 scans", s)
	}
}

func TestRestartServesCachedReport(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	img := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"})
	d := e.push("base/alpine", img)
	r1 := e.mustScan(d)

	e.restart()
	if e.db.Version() != r1.DBVersion {
		t.Fatalf("after restart DB version %q, want %q (loaded from the cache dir)", e.db.Version(), r1.DBVersion)
	}
	e.reg.ResetCounts()
	r2 := e.mustScan(d)
	if diff := cmp.Diff(r1, r2); diff != "" {
		t.Errorf("report after restart (-before +after):\n%s", diff)
	}
	s := e.scanner.Stats()
	if s.Scans != 0 || s.DiskHits != 1 {
		t.Errorf("stats after restart %+v, want no scan and one disk hit", s)
	}
	if n := e.reg.Requests(); n != 0 {
		t.Errorf("registry saw %d requests after restart, want 0", n)
	}
}

func TestRestartWithoutNetworkKeepsDB(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	v := e.db.Version()
	e.reg.Close()
	e.restart()
	if e.db.Version() != v {
		t.Fatalf("after restart without registry: version %q, want %q", e.db.Version(), v)
	}
}

// Entries of many repositories on one digest (a catalog created at once)
// cost one scan of that digest.
func TestOneDigestInManyRepositoriesIsScannedOnce(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE}, func(_ *DBOptions, o *Options) { o.Concurrency = 1 })
	img := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"})
	var digests []name.Digest
	for i := range 8 {
		digests = append(digests, e.push(fmt.Sprintf("base/app-%d", i), img))
	}
	var wg sync.WaitGroup
	for _, d := range digests {
		wg.Go(func() {
			if r, err := e.scan(d); err != nil || len(r.Findings) != 1 {
				t.Errorf("scan of %s: %v", d, err)
			}
		})
	}
	wg.Wait()
	if s := e.scanner.Stats(); s.Scans != 1 {
		t.Errorf("stats %+v: want one scan for one digest in 8 repositories", s)
	}
}

func TestConcurrentScansOfOneDigestShareAScan(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE}, func(_ *DBOptions, o *Options) { o.Concurrency = 1 })
	img := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"})
	d := e.push("base/alpine", img)

	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := e.scan(d); err != nil || len(r.Findings) != 1 {
				t.Errorf("scan: %v", err)
			}
		}()
	}
	wg.Wait()
	s := e.scanner.Stats()
	if s.Scans != 1 {
		t.Errorf("stats %+v: want exactly one scan for 8 concurrent requests", s)
	}
	if got := e.counter.gets(layerDigests(t, img)...); got != 1 {
		t.Errorf("layer fetched %d times, want 1", got)
	}
}

func TestLayerLimits(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE}, func(_ *DBOptions, o *Options) {
		o.Limits = Limits{MaxLayers: 1, MaxLayerSize: 1 << 20}
	})
	small := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"})
	if _, err := e.scan(e.push("base/small", small)); err != nil {
		t.Fatalf("image within limits: %v", err)
	}

	// Two layers: over the count limit.
	extra, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"/etc/motd": "hi\n"}})
	if err != nil {
		t.Fatal(err)
	}
	extraLayers, err := extra.Layers()
	if err != nil {
		t.Fatal(err)
	}
	two, err := appendLayer(small, extraLayers[0])
	if err != nil {
		t.Fatal(err)
	}
	d := e.push("base/two", two)
	_, err = e.scan(d)
	var le *scan.LimitError
	if !errors.Is(err, scan.ErrLayerLimitExceeded) || !errors.As(err, &le) || le.Limit != scan.LimitLayerCount || le.Value != 2 || le.Max != 1 {
		t.Fatalf("two layers: err = %v, want LayerCount limit error", err)
	}
	if got := e.counter.gets(layerDigests(t, extra)...); got != 0 {
		t.Errorf("refused image: layers fetched %d times, want 0", got)
	}

	// One big layer: over the size limit.
	big, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"/blob": randomText(2 << 20)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.scan(e.push("base/big", big))
	if !errors.As(err, &le) || le.Limit != scan.LimitLayerSize {
		t.Fatalf("big layer: err = %v, want LayerSize limit error", err)
	}
}

func TestLayerCacheStaysWithinBound(t *testing.T) {
	var mu sync.Mutex
	now := dbBuilt1
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, []vulndbtest.Advisory{muslCVE}, func(_ *DBOptions, o *Options) {
		o.LayerCacheBytes = 1
		o.Now = clock
	})
	for i, v := range []string{"1.2.5-r0", "1.2.5-r1", "1.2.4-r0"} {
		mu.Lock()
		now = now.Add(time.Hour)
		mu.Unlock()
		e.mustScan(e.push("base/a"+string(rune('0'+i)), alpine(t, "", imagetest.Package{Name: "musl", Version: v})))
		// Entries of earlier scans are evicted; those of the scan that
		// just ran are kept for the grace period.
		e.scanner.layers.mu.Lock()
		n := len(e.scanner.layers.entries)
		e.scanner.layers.mu.Unlock()
		if n > 2 {
			t.Errorf("after scan %d the layer cache has %d entries, want at most 2 (one layer, one config)", i+1, n)
		}
	}
}

func appendLayer(img v1.Image, l v1.Layer) (v1.Image, error) {
	return mutate.Append(img, mutate.Addendum{Layer: l})
}

func randomText(n int) string {
	b := make([]byte, n*3/4)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestResultCacheBoundsMemoryNotDisk(t *testing.T) {
	current := "v1"
	c, err := newResultCache(t.TempDir(), 2, 1<<20, func() string { return current })
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"sha256:a", "sha256:b", "sha256:c"} {
		if _, err := c.put(cacheKey(d, nil, "v1"), &scan.Report{Digest: d, DBVersion: "v1"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.reports.len(); n != 2 {
		t.Errorf("%d reports in memory, want 2", n)
	}
	// A report on disk takes its SBOM from its digest's analysis.
	if _, _, ok := c.get(cacheKey("sha256:a", nil, "v1"), analysisKey("sha256:a", nil), "v1"); ok {
		t.Error("a report on disk is served without its analysis")
	}
	if err := c.putAnalysis(analysisKey("sha256:a", nil), &analysis{Platforms: []analysedImage{{Platform: "linux/amd64"}},
		SBOM: []byte(`{"bomFormat":"CycloneDX"}`)}); err != nil {
		t.Fatal(err)
	}
	r, fromDisk, ok := c.get(cacheKey("sha256:a", nil, "v1"), analysisKey("sha256:a", nil), "v1")
	if !ok || !fromDisk || r.Digest != "sha256:a" || string(r.SBOM) != `{"bomFormat":"CycloneDX"}` {
		t.Errorf("evicted report: ok %v fromDisk %v report %+v; want it from disk, with its SBOM", ok, fromDisk, r)
	}

	// A report under a new current DB version drops the old version's reports.
	current = "v2"
	if _, err := c.put(cacheKey("sha256:a", nil, "v2"), &scan.Report{Digest: "sha256:a", DBVersion: "v2"}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.get(cacheKey("sha256:b", nil, "v1"), analysisKey("sha256:b", nil), "v1"); ok {
		t.Error("report of the old DB version is still served")
	}

	// The byte bound evicts too.
	small, err := newResultCache(t.TempDir(), 100, 1000, func() string { return "v1" })
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"sha256:a", "sha256:b", "sha256:c"} {
		if _, err := small.put(cacheKey(d, nil, "v1"), &scan.Report{Digest: d, DBVersion: "v1", SBOM: make([]byte, 400)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := small.reports.len(); n != 1 {
		t.Errorf("%d reports of ~650 bytes in a 1000-byte memory cache, want 1", n)
	}
}

// A scan that began under an older DB and ends after a newer one is in use
// must not evict the newer version's reports, nor be stored itself.
func TestResultCacheOlderVersionCannotEvictCurrent(t *testing.T) {
	dir := t.TempDir()
	current := "v2"
	c, err := newResultCache(dir, 100, 1<<20, func() string { return current })
	if err != nil {
		t.Fatal(err)
	}
	if stored, err := c.put(cacheKey("sha256:a", nil, "v2"), &scan.Report{Digest: "sha256:a", DBVersion: "v2"}); err != nil || !stored {
		t.Fatalf("put v2: stored %v, %v", stored, err)
	}
	if stored, err := c.put(cacheKey("sha256:a", nil, "v1"), &scan.Report{Digest: "sha256:a", DBVersion: "v1"}); err != nil || stored {
		t.Fatalf("put of an older version: stored %v, %v; want it refused", stored, err)
	}
	if _, _, ok := c.get(cacheKey("sha256:a", nil, "v2"), analysisKey("sha256:a", nil), "v2"); !ok {
		t.Error("the current version's report was evicted by an older version's")
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 || des[0].Name() != versionDir("v2") {
		t.Errorf("result directories %v, want only v2's", des)
	}
	// A newer current version does replace them.
	current = "v3"
	c.setVersion("v3")
	if _, _, ok := c.get(cacheKey("sha256:a", nil, "v2"), analysisKey("sha256:a", nil), "v2"); ok {
		t.Error("v2's report survived the switch to v3")
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("result directories after the switch: %v", des)
	}
}

func TestResultCachePrunesDiskOldestFirst(t *testing.T) {
	dir := t.TempDir()
	c, err := newResultCache(dir, 1, 1<<20, func() string { return "v1" })
	if err != nil {
		t.Fatal(err)
	}
	put := func(d string) {
		t.Helper()
		if _, err := c.put(cacheKey(d, nil, "v1"), &scan.Report{Digest: d, DBVersion: "v1", SBOM: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	put("sha256:a")
	one := c.diskSize()
	c.setDiskMax(3*one + one/2)
	for _, d := range []string{"sha256:b", "sha256:c", "sha256:d", "sha256:e"} {
		time.Sleep(5 * time.Millisecond) // distinct write times
		put(d)
	}
	if got := c.diskSize(); got > 3*one+one/2 {
		t.Errorf("%d bytes on disk, bound %d", got, 3*one+one/2)
	}
	for d, want := range map[string]bool{"sha256:a": false, "sha256:b": false, "sha256:c": true, "sha256:d": true, "sha256:e": true} {
		_, err := os.Stat(c.path(cacheKey(d, nil, "v1"), "v1"))
		if (err == nil) != want {
			t.Errorf("%s on disk: %v, want %v", d, err == nil, want)
		}
	}

	// A restart under the same version finds the files and keeps the bound.
	c2, err := newResultCache(dir, 1, 1<<20, func() string { return "v1" })
	if err != nil {
		t.Fatal(err)
	}
	c2.setDiskMax(2 * one)
	c2.setVersion("v1")
	if got := c2.diskSize(); got > 2*one || got == 0 {
		t.Errorf("after restart: %d bytes on disk, want (0, %d]", got, 2*one)
	}
}

// A request made after a DB swap never joins a scan started before it, and
// that older scan's late report does not evict the new version's.
func TestScanAfterDBSwapDoesNotJoinOlderScan(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	d := e.push("base/alpine", alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}))
	v1 := e.db.Version()

	reached, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	e.scanner.scanned = func(*scan.Report) {
		if calls.Add(1) == 1 {
			close(reached)
			<-release
		}
	}
	type result struct {
		r   *scan.Report
		err error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() { r, err := e.scan(d); first <- result{r, err} }()
	select {
	case <-reached:
	case <-time.After(time.Minute):
		t.Fatal("the first scan did not finish its analysis")
	}

	e.publishDB([]vulndbtest.Advisory{muslCVE, cve9}, dbBuilt2)
	e.update()
	v2 := e.db.Version()
	go func() { r, err := e.scan(d); second <- result{r, err} }()
	var b result
	select {
	case b = <-second:
		close(release)
	case <-time.After(10 * time.Second):
		// It joined the first scan: let that one end.
		close(release)
		b = <-second
	}
	a := <-first
	if a.err != nil || b.err != nil {
		t.Fatalf("scans: %v, %v", a.err, b.err)
	}
	if a.r.DBVersion != v1 {
		t.Errorf("first scan reports DB %q, want %q", a.r.DBVersion, v1)
	}
	if b.r.DBVersion != v2 || !hasFinding(b.r, cve9.ID) {
		t.Errorf("scan requested after the swap reports DB %q with %+v; want %q with %s", b.r.DBVersion, b.r.Findings, v2, cve9.ID)
	}
	if r, ok := e.scanner.Cached(scan.Request{Image: d}); !ok || r.DBVersion != v2 {
		t.Errorf("cached after the older scan ended: ok %v, report %+v; want the v2 report", ok, r)
	}
	// The analyses hold for every DB version; of the reports, only v2's
	// are kept.
	des, _ := os.ReadDir(filepath.Join(e.cacheDir, "results"))
	des = slices.DeleteFunc(des, func(de os.DirEntry) bool { return de.Name() == analysisDir })
	if len(des) != 1 || des[0].Name() != versionDir(v2) {
		t.Errorf("result directories %v, want only v2's", des)
	}
}

// cve9 is a HIGH musl advisory only the second DB of some tests has.
var cve9 = vulndbtest.Advisory{ID: "CVE-2099-0009", Distro: vulndbtest.Alpine322, Package: "musl", FixedVersion: "1.2.6-r0", Severity: "HIGH"}

func hasFinding(r *scan.Report, id string) bool {
	for _, f := range r.Findings {
		if f.ID == id {
			return true
		}
	}
	return false
}

// A digest analysed before is re-evaluated under a new DB from the layer
// cache and the DB alone: no registry request, the same SBOM bytes, and the
// findings of the new DB. After a restart too. When the layer cache has
// lost the analysis, the image is analysed again.
func TestReevaluationReadsOnlyTheLayerCacheAndTheDB(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	img := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}, imagetest.Package{Name: "zlib", Version: "1.3.1-r2"})
	d := e.push("base/alpine", img)
	r1 := e.mustScan(d)

	zlibCVE := vulndbtest.Advisory{ID: "CVE-2099-0003", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "1.3.1-r3", Severity: "HIGH"}
	e.publishDB([]vulndbtest.Advisory{muslCVE, zlibCVE}, dbBuilt2)
	e.update()
	e.reg.ResetCounts()
	r2 := e.mustScan(d)
	if n := e.reg.Requests(); n != 0 {
		t.Errorf("re-evaluation made %d registry requests, want 0", n)
	}
	if !bytes.Equal(r2.SBOM, r1.SBOM) || len(r2.SBOM) == 0 {
		t.Errorf("re-evaluation wrote another SBOM (%d bytes, was %d)", len(r2.SBOM), len(r1.SBOM))
	}
	if !slices.Equal(r2.Platforms, r1.Platforms) || len(r2.Images) != len(r1.Images) || r2.Images[0].User != r1.Images[0].User {
		t.Errorf("re-evaluation: platforms %v images %+v, want %v %+v", r2.Platforms, r2.Images, r1.Platforms, r1.Images)
	}
	ids := func(r *scan.Report) []string {
		var out []string
		for _, f := range r.Findings {
			out = append(out, f.ID)
		}
		slices.Sort(out)
		return out
	}
	if got, want := ids(r2), []string{muslCVE.ID, zlibCVE.ID}; !slices.Equal(got, want) {
		t.Errorf("findings after the DB update: %v, want %v", got, want)
	}

	// A restart under a newer DB: the analysis is read from disk.
	e.restart()
	e.publishDB([]vulndbtest.Advisory{zlibCVE}, dbBuilt2.Add(time.Hour))
	e.update()
	e.reg.ResetCounts()
	r3 := e.mustScan(d)
	if n := e.reg.Requests(); n != 0 {
		t.Errorf("re-evaluation after a restart made %d registry requests, want 0", n)
	}
	if got, want := ids(r3), []string{zlibCVE.ID}; !slices.Equal(got, want) || !bytes.Equal(r3.SBOM, r1.SBOM) {
		t.Errorf("after a restart: findings %v (want %v), SBOM same: %v", got, want, bytes.Equal(r3.SBOM, r1.SBOM))
	}

	// The layer cache lost the analysis: the image is analysed again.
	if err := e.scanner.layers.Clear(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.publishDB([]vulndbtest.Advisory{muslCVE}, dbBuilt2.Add(2*time.Hour))
	e.update()
	before := e.scanner.Stats().LayerDownloads
	r4 := e.mustScan(d)
	if got, want := ids(r4), []string{muslCVE.ID}; !slices.Equal(got, want) {
		t.Errorf("findings after the layer cache was cleared: %v, want %v", got, want)
	}
	if e.scanner.Stats().LayerDownloads == before {
		t.Error("the image was not analysed again after the layer cache lost it")
	}
}
