package trivy

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"

	"github.com/plinth-dev/plinth/internal/scan"
)

var (
	dbBuilt1 = time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)
	dbBuilt2 = time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
)

// muslCVE is CRITICAL in musl, fixed in 1.2.5-r1.
var muslCVE = vulndbtest.Advisory{ID: "CVE-2099-0001", Distro: vulndbtest.Alpine322, Package: "musl", FixedVersion: "1.2.5-r1", Severity: "CRITICAL"}

// env is a registry with a vulnerability DB artifact, a DB manager and a
// scanner sharing one cache directory.
type env struct {
	t        testing.TB
	reg      *registrytest.Registry
	dbRepo   string
	cacheDir string
	db       *DBManager
	scanner  *Scanner
	counter  *countingTransport
}

type envOption func(*DBOptions, *Options)

func newEnv(t testing.TB, advs []vulndbtest.Advisory, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, reg: registrytest.New(t), cacheDir: t.TempDir(), counter: newCountingTransport(http.DefaultTransport)}
	e.dbRepo = e.reg.Host + "/aquasec/trivy-db:2"
	if advs != nil {
		e.publishDB(advs, dbBuilt1)
	}
	e.open(opts...)
	if advs != nil {
		e.update()
	}
	return e
}

// open starts a DB manager and a scanner on the cache directory, as a
// process start would.
func (e *env) open(opts ...envOption) {
	e.t.Helper()
	dbo := DBOptions{Repositories: []string{e.dbRepo}, CacheDir: e.cacheDir}
	so := Options{CacheDir: e.cacheDir}
	for _, o := range opts {
		o(&dbo, &so)
	}
	m, err := NewDBManager(dbo)
	if err != nil {
		e.t.Fatalf("NewDBManager: %v", err)
	}
	e.db = m
	so.DB = m
	s, err := NewScanner(so)
	if err != nil {
		e.t.Fatalf("NewScanner: %v", err)
	}
	e.scanner = s
	e.t.Cleanup(func() { _ = m.Close() })
}

// restart closes the DB manager and opens a new one with a new scanner on
// the same cache directory.
func (e *env) restart(opts ...envOption) {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatalf("closing DB: %v", err)
	}
	e.open(opts...)
}

func (e *env) publishDB(advs []vulndbtest.Advisory, built time.Time, opts ...vulndbtest.Option) string {
	e.t.Helper()
	dir := e.t.TempDir()
	if _, err := vulndbtest.Build(dir, advs, built); err != nil {
		e.t.Fatalf("building DB: %v", err)
	}
	d, err := vulndbtest.Push(context.Background(), e.dbRepo, dir, opts...)
	if err != nil {
		e.t.Fatalf("pushing DB: %v", err)
	}
	return d
}

func (e *env) update() {
	e.t.Helper()
	if _, err := e.db.Update(context.Background()); err != nil {
		e.t.Fatalf("DB update: %v", err)
	}
}

func (e *env) push(repo string, img v1.Image) name.Digest {
	e.t.Helper()
	d, err := imagetest.PushImage(context.Background(), e.reg.Host+"/"+repo+":latest", img)
	if err != nil {
		e.t.Fatal(err)
	}
	return mustDigest(e.t, e.reg.Host+"/"+repo+"@"+d)
}

func (e *env) pushIndex(repo string, idx v1.ImageIndex) name.Digest {
	e.t.Helper()
	d, err := imagetest.PushIndex(context.Background(), e.reg.Host+"/"+repo+":latest", idx)
	if err != nil {
		e.t.Fatal(err)
	}
	return mustDigest(e.t, e.reg.Host+"/"+repo+"@"+d)
}

func (e *env) scan(d name.Digest, platforms ...string) (*scan.Report, error) {
	return e.scanner.Scan(context.Background(), scan.Request{Image: d, Platforms: platforms, Transport: e.counter})
}

func (e *env) mustScan(d name.Digest, platforms ...string) *scan.Report {
	e.t.Helper()
	r, err := e.scan(d, platforms...)
	if err != nil {
		e.t.Fatalf("Scan: %v", err)
	}
	return r
}

func mustDigest(t testing.TB, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func alpine(t testing.TB, arch string, pkgs ...imagetest.Package) v1.Image {
	t.Helper()
	img, err := imagetest.AlpineImage(imagetest.DistroOptions{Packages: pkgs, Architecture: arch, Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func debian(t testing.TB, pkgs ...imagetest.Package) v1.Image {
	t.Helper()
	img, err := imagetest.DebianImage(imagetest.DistroOptions{Packages: pkgs, Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// countingTransport records the blob GETs the registry served.
type countingTransport struct {
	next http.RoundTripper

	mu    sync.Mutex
	blobs map[string]int // digest → GETs
}

func newCountingTransport(next http.RoundTripper) *countingTransport {
	return &countingTransport{next: next, blobs: map[string]int{}}
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		if i := strings.Index(req.URL.Path, "/blobs/"); i >= 0 {
			c.mu.Lock()
			c.blobs[req.URL.Path[i+len("/blobs/"):]]++
			c.mu.Unlock()
		}
	}
	return c.next.RoundTrip(req)
}

// gets returns how often the blobs were fetched, in total.
func (c *countingTransport) gets(digests ...v1.Hash) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, d := range digests {
		n += c.blobs[d.String()]
	}
	return n
}

func layerDigests(t testing.TB, imgs ...v1.Image) []v1.Hash {
	t.Helper()
	var out []v1.Hash
	for _, img := range imgs {
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			d, err := l.Digest()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}
