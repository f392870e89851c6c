package trivy

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/plinth-dev/plinth/internal/scan"
)

// guardedLayer is a layer whose uncompressed stream is watched while
// Trivy reads it:
//   - it fails with a *scan.LimitError once it passes max bytes, so that a
//     decompression bomb costs at most max bytes of inflating rather than
//     hours of CPU and, for files Trivy's analysers read, as much
//     temporary disk;
//   - it fails with an invalid-image error at an entry whose name climbs
//     out of the root ("../../etc/passwd"), or a hard link to one. A
//     container runtime would land such a file somewhere inside the root,
//     where Trivy, which takes names as given, would not look for it; an
//     image built that way is refused rather than judged on half of it.
type guardedLayer struct {
	v1.Layer
	max      int64
	platform string
}

func (l *guardedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	g := &layerGuard{src: rc, left: l.max, layer: l, pw: pw, done: make(chan struct{})}
	go g.watch(pr)
	return g, nil
}

// layerGuard passes the layer's bytes on to its reader and to a tar
// parser that checks the entry names as they pass.
type layerGuard struct {
	src   io.ReadCloser
	left  int64
	layer *guardedLayer

	pw   *io.PipeWriter
	done chan struct{}
	bad  error // set by watch before done closes

	closeOnce sync.Once
}

func (g *layerGuard) watch(pr *io.PipeReader) {
	defer close(g.done)
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if err != nil {
			// The end, or a malformed archive: Trivy reports the latter.
			_ = pr.CloseWithError(errWatchDone)
			return
		}
		if escapes(hdr.Name) || (hdr.Typeflag == tar.TypeLink && escapes(hdr.Linkname)) {
			g.bad = &scan.Error{Kind: scan.KindInvalid,
				Message: fmt.Sprintf("analysing the layers for %s: a layer has an entry outside the root (%q)", g.layer.platform, truncateName(hdr.Name)),
				Err:     errEntryOutsideRoot}
			_ = pr.CloseWithError(g.bad)
			return
		}
	}
}

var (
	errEntryOutsideRoot = errors.New("layer entry outside the root")
	errWatchDone        = errors.New("layer watch ended")
)

func (g *layerGuard) Read(p []byte) (int, error) {
	if g.left < 0 {
		return 0, g.limitErr()
	}
	if int64(len(p)) > g.left+1 {
		p = p[:g.left+1]
	}
	n, err := g.src.Read(p)
	g.left -= int64(n)
	if g.left < 0 {
		return 0, g.limitErr()
	}
	if n > 0 {
		if _, werr := g.pw.Write(p[:n]); werr != nil && werr != errWatchDone {
			<-g.done
			if g.bad != nil {
				return 0, g.bad
			}
		}
	}
	if err == io.EOF {
		// The verdict on the last entries before the end.
		_ = g.pw.Close()
		<-g.done
		if g.bad != nil {
			return 0, g.bad
		}
	}
	return n, err
}

func (g *layerGuard) Close() error {
	g.closeOnce.Do(func() {
		_ = g.pw.CloseWithError(io.ErrClosedPipe)
		<-g.done
	})
	return g.src.Close()
}

func (g *layerGuard) limitErr() error {
	return &scan.LimitError{Limit: scan.LimitUncompressedSize, Platform: g.layer.platform, Value: g.layer.max + 1, Max: g.layer.max}
}

// escapes tells whether an archive path climbs above the root.
func escapes(name string) bool {
	c := path.Clean(strings.TrimLeft(name, "/"))
	return c == ".." || strings.HasPrefix(c, "../")
}

func truncateName(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
