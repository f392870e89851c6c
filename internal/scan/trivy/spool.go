package trivy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/plinth-dev/plinth/internal/scan"
)

// spool is the directory where the compressed layers a scan needs are
// downloaded before Trivy analyses them, so the analysis (which runs
// under analysersMu) reads only local files. Its bytes are bounded: a scan
// reserves the sizes of the layers it downloads before it downloads them,
// and waits while others hold the room.
type spool struct {
	dir string

	mu       sync.Mutex
	capacity int64
	used     int64
	changed  chan struct{} // closed and replaced when room may have freed
}

func newSpool(dir string, capacity int64) (*spool, error) {
	// Layers of scans interrupted by a previous process are of no use.
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating layer spool directory: %w", err)
	}
	return &spool{dir: dir, capacity: capacity, changed: make(chan struct{})}, nil
}

// Capacity is the spool's bound in bytes.
func (s *spool) Capacity() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.capacity
}

func (s *spool) setCapacity(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capacity = n
	s.broadcastLocked()
}

func (s *spool) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// errSpoolTooSmall says a reservation can never fit.
var errSpoolTooSmall = errors.New("larger than the layer spool")

// reserve waits until n bytes are free and takes them.
func (s *spool) reserve(ctx context.Context, n int64) error {
	for {
		s.mu.Lock()
		if n > s.capacity {
			s.mu.Unlock()
			return errSpoolTooSmall
		}
		if s.used+n <= s.capacity {
			s.used += n
			s.mu.Unlock()
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *spool) release(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= n
	s.broadcastLocked()
}

// spooledLayer is a layer whose compressed bytes, verified against the
// digest while downloaded, are in a local file.
type spooledLayer struct {
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
	path           string
}

func (l *spooledLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *spooledLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *spooledLayer) Size() (int64, error)                { return l.size, nil }
func (l *spooledLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *spooledLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

// download copies the compressed bytes of remote layer l into the spool
// and returns it as a local layer and its file. go-containerregistry
// checks the digest as the bytes arrive, and the request follows the
// context of the puller; progress is called as bytes arrive.
func (s *spool) download(l v1.Layer, diffID v1.Hash, progress func(int)) (v1.Layer, string, error) {
	digest, err := l.Digest()
	if err != nil {
		return nil, "", err
	}
	op := "downloading layer " + scan.ShortDigest(digest.String())
	size, err := l.Size()
	if err != nil {
		return nil, "", err
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, "", err
	}
	f, err := os.CreateTemp(s.dir, "layer-*")
	if err != nil {
		return nil, "", &scan.Error{Kind: scan.KindInternal, Message: op + ": cannot write to the layer spool", Err: err}
	}
	path := f.Name()
	fail := func(err error) (v1.Layer, string, error) {
		f.Close()
		os.Remove(path)
		return nil, "", err
	}
	rc, err := l.Compressed()
	if err != nil {
		return fail(classifyRegistry(op, err))
	}
	_, err = io.Copy(markingWriter{f}, io.TeeReader(rc, progressWriter(progress)))
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	var we *writeError
	switch {
	case errors.As(err, &we):
		return fail(&scan.Error{Kind: scan.KindInternal, Message: op + ": cannot write to the layer spool", Err: err})
	case err != nil:
		return fail(classifyRegistry(op, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, "", &scan.Error{Kind: scan.KindInternal, Message: op + ": cannot write to the layer spool", Err: err}
	}
	local, err := partial.CompressedToLayer(&spooledLayer{digest: digest, diffID: diffID, size: size, mediaType: mt, path: path})
	if err != nil {
		os.Remove(path)
		return nil, "", &scan.Error{Kind: scan.KindInternal, Message: op + ": cannot read the spooled layer", Err: err}
	}
	return local, path, nil
}

// markingWriter marks the errors of writing to the spool file, to tell
// them from the registry's.
type markingWriter struct{ w io.Writer }

func (m markingWriter) Write(b []byte) (int, error) {
	n, err := m.w.Write(b)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// writeError marks a failure to write to the spool file.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

type progressWriter func(int)

func (p progressWriter) Write(b []byte) (int, error) {
	p(len(b))
	return len(b), nil
}

// removeAll deletes spooled files.
func removeAll(paths []string) {
	for _, p := range paths {
		_ = os.Remove(p)
	}
}
