package trivy

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"

	"github.com/plinth-dev/plinth/internal/scan"
)

func TestDBVersionAndFreshness(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	v := e.db.Version()
	if !strings.HasPrefix(v, "2026-11-20T06:00:00Z+") || len(v) != len("2026-11-20T06:00:00Z+")+12 {
		t.Errorf("Version() = %q, want build time + 12 hex digits", v)
	}
	if !e.db.UpdatedAt().Equal(dbBuilt1) {
		t.Errorf("UpdatedAt() = %v, want %v", e.db.UpdatedAt(), dbBuilt1)
	}
	if got := e.db.Age(dbBuilt1.Add(30 * time.Hour)); got != 30*time.Hour {
		t.Errorf("Age = %v, want 30h", got)
	}
	if e.db.LastError() != nil {
		t.Errorf("LastError = %v", e.db.LastError())
	}

	// Asking again for the same artifact changes nothing.
	changed, err := e.db.Update(context.Background())
	if err != nil || changed {
		t.Errorf("second Update: changed %v, err %v; want false, nil", changed, err)
	}
	if e.db.Version() != v {
		t.Errorf("version changed to %q", e.db.Version())
	}
}

func TestDBRefusesBadArtifactsAndKeepsOldDB(t *testing.T) {
	traversal := vulndbtest.Entry{Name: "../escape", Body: []byte("x")}
	cases := []struct {
		name   string
		opts   []vulndbtest.Option
		reason string
	}{
		{"wrong layer media type", []vulndbtest.Option{vulndbtest.WithLayerMediaType("application/vnd.oci.image.layer.v1.tar+gzip")}, "UnexpectedMediaType"},
		{"wrong config media type", []vulndbtest.Option{vulndbtest.WithConfigMediaType("application/vnd.oci.image.config.v1+json")}, "UnexpectedMediaType"},
		{"truncated layer", []vulndbtest.Option{vulndbtest.WithTruncatedLayer()}, "LayerCorrupt"},
		{"path traversal", []vulndbtest.Option{vulndbtest.WithEntry(traversal)}, "UnsafeArchive"},
		{"absolute path", []vulndbtest.Option{vulndbtest.WithEntry(vulndbtest.Entry{Name: "/etc/trivy.db", Body: []byte("x")})}, "UnsafeArchive"},
		{"symlink", []vulndbtest.Option{vulndbtest.WithoutFile("trivy.db"), vulndbtest.WithEntry(vulndbtest.Entry{Name: "trivy.db", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})}, "UnsafeArchive"},
		{"device", []vulndbtest.Option{vulndbtest.WithEntry(vulndbtest.Entry{Name: "null", Typeflag: tar.TypeChar})}, "UnsafeArchive"},
		{"unexpected file", []vulndbtest.Option{vulndbtest.WithEntry(vulndbtest.Entry{Name: "extra.sh", Body: []byte("x")})}, "UnexpectedFile"},
		{"missing metadata", []vulndbtest.Option{vulndbtest.WithoutFile("metadata.json")}, "FileMissing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, []vulndbtest.Advisory{muslCVE})
			old := e.db.Version()
			e.publishDB([]vulndbtest.Advisory{muslCVE}, dbBuilt2, tc.opts...)
			assertUpdateRefused(t, e, old, tc.reason)
			if _, err := os.Stat(filepath.Join(e.cacheDir, "escape")); err == nil {
				t.Error("a file escaped the download directory")
			}
		})
	}
}

func TestDBRefusesOversizedAndWrongSchema(t *testing.T) {
	t.Run("oversized trivy.db", func(t *testing.T) {
		e := newEnv(t, []vulndbtest.Advisory{muslCVE})
		old := e.db.Version()
		e.restart(func(o *DBOptions, _ *Options) { o.MaxDBSize = 1024 })
		e.publishDB([]vulndbtest.Advisory{muslCVE}, dbBuilt2)
		assertUpdateRefused(t, e, old, "TooLarge")
	})
	t.Run("schema 1", func(t *testing.T) {
		e := newEnv(t, []vulndbtest.Advisory{muslCVE})
		old := e.db.Version()
		dir := t.TempDir()
		if _, err := vulndbtest.Build(dir, []vulndbtest.Advisory{muslCVE}, dbBuilt2); err != nil {
			t.Fatal(err)
		}
		if err := vulndbtest.WriteMetadata(dir, vulndbtest.Metadata{Version: 1, UpdatedAt: dbBuilt2}); err != nil {
			t.Fatal(err)
		}
		if _, err := vulndbtest.Push(context.Background(), e.dbRepo, dir); err != nil {
			t.Fatal(err)
		}
		assertUpdateRefused(t, e, old, "SchemaMismatch")
	})
	t.Run("not a bolt file", func(t *testing.T) {
		e := newEnv(t, []vulndbtest.Advisory{muslCVE})
		old := e.db.Version()
		dir := t.TempDir()
		if _, err := vulndbtest.Build(dir, nil, dbBuilt2); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "trivy.db"), bytes.Repeat([]byte("not bolt"), 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := vulndbtest.Push(context.Background(), e.dbRepo, dir); err != nil {
			t.Fatal(err)
		}
		assertUpdateRefused(t, e, old, "DBInvalid")
	})
}

func TestDBRefusesLayerWithWrongDigest(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	old := e.db.Version()
	e.publishDB([]vulndbtest.Advisory{muslCVE}, dbBuilt2)

	// The mirror serves a well-formed DB layer, but not the one the
	// manifest names: only the digest check can tell.
	otherDir := t.TempDir()
	if _, err := vulndbtest.Build(otherDir, []vulndbtest.Advisory{{ID: "CVE-2099-6666", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "9", Severity: "LOW"}}, dbBuilt2); err != nil {
		t.Fatal(err)
	}
	other, err := vulndbtest.Layer(otherDir)
	if err != nil {
		t.Fatal(err)
	}
	e.restart(func(o *DBOptions, _ *Options) {
		o.Transport = &substitutingTransport{next: http.DefaultTransport, body: other}
	})
	assertUpdateRefused(t, e, old, "")
	var de *DBError
	if errors.As(e.db.LastError(), &de); de == nil || !(de.Reason == "DigestMismatch" || de.Reason == "LayerCorrupt") ||
		!strings.Contains(de.Error(), "sha256") && !strings.Contains(de.Error(), "size") {
		t.Errorf("refused with %v, want a digest or size mismatch", e.db.LastError())
	}
}

func TestDBMirrorFailureKeepsOldDB(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	old := e.db.Version()
	e.publishDB([]vulndbtest.Advisory{muslCVE}, dbBuilt2)
	e.reg.FailWith("/v2/aquasec/trivy-db/", http.StatusInternalServerError, -1)
	assertUpdateRefused(t, e, old, "RegistryUnavailable")

	d := e.push("base/alpine", alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}))
	if r := e.mustScan(d); r.DBVersion != old || len(r.Findings) != 1 {
		t.Errorf("scan during outage: version %q findings %d", r.DBVersion, len(r.Findings))
	}

	// Once the mirror recovers, the new DB arrives and the error clears.
	e.reg.ClearFaults()
	e.update()
	if e.db.Version() == old || e.db.LastError() != nil {
		t.Errorf("after recovery: version %q, last error %v", e.db.Version(), e.db.LastError())
	}
}

// Scans running while the DB is swapped back and forth each report
// findings of exactly the DB version they name: the two DBs differ by one
// advisory that every image is affected by.
func TestDBSwapDuringScans(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE}, func(_ *DBOptions, o *Options) { o.Concurrency = 4 })
	var digests []string
	for i, v := range []string{"1.2.5-r0", "1.2.5-r1", "1.2.4-r0", "1.2.3-r0"} {
		d := e.push("base/a"+string(rune('0'+i)), alpine(t, "", imagetest.Package{Name: "musl", Version: v}))
		digests = append(digests, d.String())
	}
	// Build the artifacts up front; swaps then alternate between them.
	// Only the second has cve9, which affects every image.
	dirs := []string{t.TempDir(), t.TempDir()}
	withCVE9 := map[string]bool{e.db.Version(): false}
	for i, dir := range dirs {
		advs := []vulndbtest.Advisory{muslCVE}
		if i == 1 {
			advs = append(advs, cve9)
		}
		built := dbBuilt1.Add(time.Duration(i+1) * time.Hour)
		if _, err := vulndbtest.Build(dir, advs, built); err != nil {
			t.Fatal(err)
		}
		withCVE9[dbVersionOf(t, dir, built)] = i == 1
	}
	if len(withCVE9) != 3 {
		t.Fatalf("DB versions %v are not distinct", withCVE9)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	var scans int
	seen := map[string]int{}
	var mu sync.Mutex
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				d := mustDigest(t, digests[(w+i)%len(digests)])
				// Bypass the result cache so every call reads the DB.
				r, err := e.scanner.scan(ctx, scan.Request{Image: d}, nil)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				want, known := withCVE9[r.DBVersion]
				switch {
				case !known:
					errs <- fmt.Errorf("report names DB version %q, not one of the DBs published", r.DBVersion)
					return
				case hasFinding(r, cve9.ID) != want:
					errs <- fmt.Errorf("report of %s under DB %q has findings %+v: %s present %v, want %v",
						d.DigestStr(), r.DBVersion, r.Findings, cve9.ID, !want, want)
					return
				}
				mu.Lock()
				scans++
				seen[r.DBVersion]++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < 6; i++ {
		if _, err := vulndbtest.Push(context.Background(), e.dbRepo, dirs[i%2]); err != nil {
			t.Fatal(err)
		}
		e.update()
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("scan during swaps: %v", err)
	}
	t.Logf("%d scans during 6 swaps, by DB version: %v", scans, seen)
	if scans == 0 {
		t.Error("no scan completed")
	}
}

// dbVersionOf is the version string the DB built in dir gets once pushed.
func dbVersionOf(t *testing.T, dir string, built time.Time) string {
	t.Helper()
	layer, err := vulndbtest.Layer(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(layer)
	return versionOf(dbMetadata{UpdatedAt: built}, "sha256:"+hex.EncodeToString(sum[:]))
}

func TestDBStatusCountsFailures(t *testing.T) {
	var mu sync.Mutex
	var attempts []error
	now := dbBuilt1.Add(time.Hour)
	e := newEnv(t, []vulndbtest.Advisory{muslCVE}, func(o *DBOptions, _ *Options) {
		o.Now = func() time.Time { return now }
		o.OnUpdate = func(err error) {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, err)
		}
	})
	st := e.db.Status()
	if st.Version != e.db.Version() || !st.UpdatedAt.Equal(dbBuilt1) || st.Size <= 0 || !st.LastSuccess.Equal(now) ||
		st.LastError != "" || st.ConsecutiveFailures != 0 || st.TotalFailures != 0 {
		t.Errorf("status after a good update: %+v", st)
	}
	if e.db.DiskReserve() != 2*st.Size {
		t.Errorf("DiskReserve = %d, want twice the DB's %d bytes", e.db.DiskReserve(), st.Size)
	}

	e.reg.FailWith("/v2/aquasec/trivy-db/", http.StatusForbidden, -1)
	for i := 0; i < 2; i++ {
		if _, err := e.db.Update(context.Background()); err == nil {
			t.Fatal("update succeeded against a refusing mirror")
		}
	}
	st = e.db.Status()
	want := "vulnerability database update failed: RegistryUnavailable: reaching the DB repository: registry denied access (HTTP 403)"
	if st.ConsecutiveFailures != 2 || st.TotalFailures != 2 || st.LastError != want || !st.LastSuccess.Equal(now) {
		t.Errorf("status after two failures: %+v; want LastError %q", st, want)
	}
	if strings.Contains(st.LastError, "127.0.0.1") || strings.Contains(st.LastError, "http") {
		t.Errorf("LastError leaks the address: %q", st.LastError)
	}

	e.reg.ClearFaults()
	now = now.Add(time.Hour)
	e.update()
	st = e.db.Status()
	if st.ConsecutiveFailures != 0 || st.TotalFailures != 2 || st.LastError != "" || !st.LastSuccess.Equal(now) {
		t.Errorf("status after recovery: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 4 || attempts[0] != nil || attempts[1] == nil || attempts[2] == nil || attempts[3] != nil {
		t.Errorf("OnUpdate saw %v, want nil, error, error, nil", attempts)
	}
}

func assertUpdateRefused(t *testing.T, e *env, old, reason string) {
	t.Helper()
	changed, err := e.db.Update(context.Background())
	if err == nil || changed {
		t.Fatalf("Update: changed %v err %v; want an error", changed, err)
	}
	var de *DBError
	if !errors.As(err, &de) {
		t.Fatalf("Update error %v is not a *DBError", err)
	}
	if reason != "" && de.Reason != reason {
		t.Errorf("reason %q (%v), want %q", de.Reason, err, reason)
	}
	if e.db.Version() != old {
		t.Errorf("version %q after refused update, want %q", e.db.Version(), old)
	}
	if e.db.LastError() == nil {
		t.Error("LastError is nil after a refused update")
	}
	d := e.push("base/check", alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}))
	r, err := e.scanner.scan(context.Background(), scan.Request{Image: d, Transport: e.counter}, nil)
	if err != nil {
		t.Fatalf("scan with the old DB: %v", err)
	}
	if r.DBVersion != old || len(r.Findings) != 1 {
		t.Errorf("scan with the old DB: version %q, findings %+v", r.DBVersion, r.Findings)
	}
	entries, _ := os.ReadDir(filepath.Join(e.cacheDir, "db"))
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), "download-") {
			t.Errorf("download directory %s left behind", de.Name())
		}
	}
}

// substitutingTransport answers every GET of a DB layer blob with body.
type substitutingTransport struct {
	next http.RoundTripper
	body []byte
}

func (c *substitutingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/blobs/") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	if resp.ContentLength >= 0 && resp.ContentLength < 16 {
		return resp, nil // the config blob, "{}"
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(c.body))
	resp.ContentLength = int64(len(c.body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(c.body)))
	return resp, nil
}

func TestDBRefusesLayerCorruptedInTransit(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	old := e.db.Version()
	e.publishDB([]vulndbtest.Advisory{muslCVE}, dbBuilt2)
	e.restart(func(o *DBOptions, _ *Options) { o.Transport = &corruptingTransport{next: http.DefaultTransport} })
	assertUpdateRefused(t, e, old, "LayerCorrupt")
}

// corruptingTransport flips one byte in every DB layer blob body.
type corruptingTransport struct{ next http.RoundTripper }

func (c *corruptingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/blobs/") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(b) > 100 {
		b[len(b)/2] ^= 0xff
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}
