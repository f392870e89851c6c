package trivy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xos "github.com/aquasecurity/trivy/pkg/x/os"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/plinth-dev/plinth/internal/scan"
	"github.com/plinth-dev/plinth/test/faultproxy"
	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// serve makes a fault proxy in front of e's registry answer for repo with
// img, and returns its digest reference through the proxy.
func (e *env) serve(p *faultproxy.Proxy, repo string, img v1.Image) name.Digest {
	e.t.Helper()
	d, err := p.ServeImage(repo, "1", img)
	if err != nil {
		e.t.Fatal(err)
	}
	return mustDigest(e.t, p.Host+"/"+repo+"@"+d)
}

// A small layer that inflates to gigabytes stops the scan once it passes
// the inflation limit, with a limit error that says so, instead of being
// inflated to its end.
func TestDecompressionBombIsRefused(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	p := faultproxy.New(t, e.reg.URL())
	const inflated = 6 << 30
	bomb, err := faultproxy.BombLayer("srv/zeros", inflated)
	if err != nil {
		t.Fatal(err)
	}
	size, err := bomb.Size()
	if err != nil {
		t.Fatal(err)
	}
	if size > 16<<20 {
		t.Fatalf("the bomb is %d bytes compressed", size)
	}
	img, err := mutate.Append(alpine(t, "amd64"), mutate.Addendum{Layer: bomb})
	if err != nil {
		t.Fatal(err)
	}
	d := e.serve(p, "base/bomb", img)

	start := time.Now()
	_, err = e.scan(d)
	took := time.Since(start)
	var le *scan.LimitError
	if !errors.As(err, &le) || le.Limit != scan.LimitUncompressedSize || !errors.Is(err, scan.ErrLayerLimitExceeded) {
		t.Fatalf("err = %v, want the inflation limit", err)
	}
	if want := DefaultMaxLayerExpansion * size; le.Max != want {
		t.Errorf("limit = %d, want %d (the default ratio)", le.Max, want)
	}
	if want := "image for linux/amd64 has a layer that inflates to more than"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want it to start with %q", err, want)
	}
	if scan.KindOf(err) != scan.KindInvalid {
		t.Errorf("kind = %v, want invalid", scan.KindOf(err))
	}
	t.Logf("refused a %d-byte layer inflating to %d bytes in %s", size, int64(inflated), took)
	// Trivy copies a file of 100 MiB or more to a temporary file while it
	// is analysed, and keeps the partial copy when reading the layer fails
	// mid-file: here, hundreds of MiB of zeros.
	if left, _ := filepath.Glob(filepath.Join(xos.TempDir(), "cached-file-*")); len(left) > 0 {
		t.Errorf("the refused scan left %d temporary files: %v", len(left), left)
	}

	// A layer of the same content under the limit is scanned.
	e.restart(func(_ *DBOptions, o *Options) { o.Limits.MaxLayerExpansion = 10_000 })
	small, err := faultproxy.BombLayer("srv/zeros", 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Append(alpine(t, "amd64"), mutate.Addendum{Layer: small})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.scan(e.serve(p, "base/zeros", img)); err != nil {
		t.Fatalf("a layer within a raised limit: %v", err)
	}
}

// Layer entries whose names climb out of the root ("../../etc/passwd")
// are refused: the image is invalid, no file lands outside the scanner's
// directories, and no package database hidden that way goes unjudged.
func TestPathTraversalEntriesAreRefused(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	p := faultproxy.New(t, e.reg.URL())
	marker := "plinth-traversal-" + strings.ReplaceAll(t.Name(), "/", "-")
	for _, entries := range [][]imagetest.Entry{
		{{Name: "../../etc/passwd", Content: "root:x:0:0:root:/root:/bin/sh\n"}},
		{{Name: "etc/motd", Content: "hi"}, {Name: "usr/../../../" + marker, Content: "escaped"}},
		{{Name: "/../../lib/apk/db/installed", Content: "P:musl\nV:1.2.5-r0\nA:x86_64\n\n"}},
	} {
		layer, err := imagetest.LayerTar(entries)
		if err != nil {
			t.Fatal(err)
		}
		img, err := imagetest.AppendLayers(alpine(t, "amd64"), layer)
		if err != nil {
			t.Fatal(err)
		}
		p.Clear()
		d := e.serve(p, "base/traversal", img)
		_, err = e.scan(d)
		if scan.KindOf(err) != scan.KindInvalid || !strings.Contains(err.Error(), "outside the root") {
			t.Errorf("%s: err = %v, want the entry refused", entries[len(entries)-1].Name, err)
		}
	}
	for _, dir := range []string{e.cacheDir, filepath.Dir(e.cacheDir), os.TempDir(), "."} {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			t.Errorf("%s was written in %s", marker, dir)
		}
	}
}

// An image of 1,000 layers is refused from its manifest: no layer is
// downloaded.
func TestThousandLayersAreRefusedBeforeDownload(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	p := faultproxy.New(t, e.reg.URL())
	img, err := faultproxy.ManyLayers(1000)
	if err != nil {
		t.Fatal(err)
	}
	d := e.serve(p, "base/tall", img)
	_, err = e.scan(d)
	var le *scan.LimitError
	if !errors.As(err, &le) || le.Limit != scan.LimitLayerCount || le.Value != 1000 || le.Max != DefaultMaxLayers {
		t.Fatalf("err = %v, want the layer count limit", err)
	}
	if n := p.RequestsTo("/v2/base/tall/blobs/"); n > 1 {
		t.Errorf("%d blob requests, want at most the config", n)
	}
}

var _ = context.Background
