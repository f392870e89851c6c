package trivy

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"

	"github.com/plinth-dev/plinth/internal/scan"
)

// hangingRegistry is a registry on loopback whose GETs of one blob send
// half of it and then hang until the client gives up or the test ends.
type hangingRegistry struct {
	host    string
	blob    string // digest
	body    []byte
	hung    chan struct{}
	release chan struct{}
}

func newHangingRegistry(t *testing.T) *hangingRegistry {
	h := &hangingRegistry{hung: make(chan struct{}, 16), release: make(chan struct{})}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.blob != "" && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+h.blob) {
			w.Header().Set("Content-Length", itoa(len(h.body)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(h.body[:len(h.body)/2])
			w.(http.Flusher).Flush()
			h.hung <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-h.release:
			}
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(h.release) }) // runs first
	h.host = strings.TrimPrefix(srv.URL, "http://")
	return h
}

func itoa(n int) string { return strconv.Itoa(n) }

// A layer download that hangs holds neither other scans nor the analyser
// lock: another image is scanned meanwhile, and the hung scan ends by its
// deadline with a classified error.
func TestHungLayerDownloadDoesNotStallOtherScans(t *testing.T) {
	const timeout = 5 * time.Second
	e := newEnv(t, []vulndbtest.Advisory{muslCVE}, func(_ *DBOptions, o *Options) {
		o.Concurrency = 2
		o.ScanTimeout = timeout
	})
	hr := newHangingRegistry(t)
	hungImg := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}, imagetest.Package{Name: "zlib", Version: "1.3.1-r2"})
	okImg := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"})
	push := func(repo string, img v1.Image) scan.Request {
		d, err := imagetest.PushImage(context.Background(), hr.host+"/"+repo+":latest", img)
		if err != nil {
			t.Fatal(err)
		}
		return scan.Request{Image: mustDigest(t, hr.host+"/"+repo+"@"+d)}
	}
	hungReq, okReq := push("base/hung", hungImg), push("base/ok", okImg)
	ls, err := hungImg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := ls[0].Digest()
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	hr.body, _ = io.ReadAll(rc)
	rc.Close()
	hr.blob = ld.String()

	hungDone := make(chan error, 1)
	go func() {
		_, err := e.scanner.Scan(context.Background(), hungReq)
		hungDone <- err
	}()
	select {
	case <-hr.hung:
	case <-time.After(time.Minute):
		t.Fatal("the hung scan never asked for its layer")
	}

	r, err := e.scanner.Scan(context.Background(), okReq)
	if err != nil {
		t.Fatalf("scan beside a hung one: %v", err)
	}
	select {
	case err := <-hungDone:
		t.Fatalf("the hung scan ended (%v) before the other one finished", err)
	default:
	}
	if len(r.Findings) != 1 {
		t.Errorf("findings %+v", r.Findings)
	}
	// The stalled scan is pending and makes no progress.
	if err := e.scanner.Health(time.Now().Add(time.Hour), time.Minute); err == nil {
		t.Error("Health reports no stall while a scan hangs")
	}

	select {
	case err = <-hungDone:
	case <-time.After(time.Minute):
		t.Fatal("the hung scan did not end by its deadline")
	}
	want := "scan did not finish within 5s: downloading layer " + scan.ShortDigest(ld.String())
	if scan.KindOf(err) != scan.KindUnavailable || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("hung scan: %s %q, want Unavailable %q…", scan.KindOf(err), err, want)
	}
	if strings.Contains(err.Error(), hr.host) || strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("message names the registry: %q", err)
	}
	if err := e.scanner.Health(time.Now().Add(time.Hour), time.Minute); err != nil {
		t.Errorf("Health after every scan ended: %v", err)
	}
}

func TestRegistryFailuresAreClassified(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	img := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"})
	denied := e.push("base/denied", img)
	flaky := e.push("base/flaky", img)
	ld := layerDigests(t, img)[0].String()
	e.reg.FailWith("/v2/base/denied/manifests/", http.StatusForbidden, -1)
	e.reg.FailWith("/v2/base/flaky/blobs/"+ld, http.StatusServiceUnavailable, -1)
	missing := mustDigest(t, e.reg.Host+"/base/flaky@sha256:"+strings.Repeat("ab", 32))

	cases := []struct {
		name string
		req  scan.Request
		kind scan.ErrorKind
		msg  string
	}{
		{"403 on the manifest", scan.Request{Image: denied}, scan.KindUnauthorized, "fetching the manifest: registry denied access (HTTP 403)"},
		{"503 on a layer", scan.Request{Image: flaky}, scan.KindUnavailable, "downloading layer " + scan.ShortDigest(ld) + ": registry unavailable (HTTP 503)"},
		{"missing digest", scan.Request{Image: missing}, scan.KindNotFound, "fetching the manifest: manifest unknown (HTTP 404)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.scanner.Scan(context.Background(), tc.req)
			if scan.KindOf(err) != tc.kind || err == nil || err.Error() != tc.msg {
				t.Fatalf("got %s %v, want %s %q", scan.KindOf(err), err, tc.kind, tc.msg)
			}
			var se *scan.Error
			if !errors.As(err, &se) || se.Err == nil {
				t.Errorf("%v is not a *scan.Error with a cause", err)
			}
		})
	}
}

// Layers that do not fit the spool together are downloaded and analysed
// in rounds; a layer larger than the spool is refused before download.
func TestLayersAnalysedInRoundsWithinSpool(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	base := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"})
	img := base
	for i := 0; i < 2; i++ {
		extra, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"/data/" + itoa(i): randomText(100 << 10)}})
		if err != nil {
			t.Fatal(err)
		}
		ls, err := extra.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if img, err = appendLayer(img, ls[0]); err != nil {
			t.Fatal(err)
		}
	}
	d := e.push("base/layered", img)

	// A spool of 150 KiB holds one 100 KiB layer at a time.
	reserve := e.db.DiskReserve()
	e.restart(func(_ *DBOptions, o *Options) { o.CacheMaxBytes = reserve + 4*(150<<10) })
	if got := e.scanner.Budget().Spool; got != 150<<10 {
		t.Fatalf("spool %d bytes, want %d", got, 150<<10)
	}
	r := e.mustScan(d)
	if len(r.Findings) != 1 {
		t.Errorf("findings %+v", r.Findings)
	}
	if s := e.scanner.Stats(); s.LayerDownloads != 3 {
		t.Errorf("stats %+v, want 3 layer downloads", s)
	}
	if des, _ := os.ReadDir(filepath.Join(e.cacheDir, "spool")); len(des) != 0 {
		t.Errorf("spool holds %d files after the scan", len(des))
	}

	// A spool of 50 KiB cannot hold a new 100 KiB layer.
	e.restart(func(_ *DBOptions, o *Options) { o.CacheMaxBytes = reserve + 4*(50<<10) })
	big, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"/data/big": randomText(100 << 10)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.scanner.scan(context.Background(), scan.Request{Image: e.push("base/big", big), Transport: e.counter}, nil)
	var le *scan.LimitError
	if !errors.As(err, &le) || le.Limit != scan.LimitLayerSize || le.Max != 50<<10 {
		t.Fatalf("layer larger than the spool: %v, want a LayerSize limit error", err)
	}
}
