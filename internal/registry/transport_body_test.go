package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/plinth-dev/plinth/internal/registry"
)

// bodyServer answers /v2/ and serves paths ending in "/stall" or "/slow"
// under /v2/base/big/: a stalled one sends its headers and a few bytes,
// then nothing until the client goes away; a slow one sends size bytes in
// chunks every tick. Blob paths with a digest serve the slow content.
type bodyServer struct {
	size  int
	chunk int
	tick  time.Duration
	data  []byte
}

func newBodyServer(t *testing.T, size, chunk int, tick time.Duration) (*bodyServer, *httptest.Server) {
	b := &bodyServer{size: size, chunk: chunk, tick: tick, data: bytes.Repeat([]byte("plinth!\n"), size/8+1)[:size]}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv
}

func (b *bodyServer) digest() string {
	h := sha256.Sum256(b.data)
	return "sha256:" + hex.EncodeToString(h[:])
}

func (b *bodyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := w.(http.Flusher)
	switch {
	case r.URL.Path == "/v2/":
		return
	case strings.HasSuffix(r.URL.Path, "/stall"):
		w.Header().Set("Content-Length", "1048576")
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte("a few bytes"))
		f.Flush()
		<-r.Context().Done()
	case strings.Contains(r.URL.Path, "/blobs/") || strings.HasSuffix(r.URL.Path, "/slow"):
		w.Header().Set("Content-Length", strconv.Itoa(len(b.data)))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", b.digest())
		for off := 0; off < len(b.data); off += b.chunk {
			if off > 0 {
				select {
				case <-time.After(b.tick):
				case <-r.Context().Done():
					return
				}
			}
			_, _ = w.Write(b.data[off:min(off+b.chunk, len(b.data))])
			f.Flush()
		}
	default:
		http.NotFound(w, r)
	}
}

// read GETs url through rt and reads the whole body, giving up after a
// minute so that a hanging body fails the test rather than hang it.
func read(t *testing.T, rt http.RoundTripper, url string) ([]byte, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, time.Since(start), err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if ctx.Err() != nil {
		t.Fatalf("body still unread after a minute: %v", err)
	}
	return body, time.Since(start), err
}

func TestStalledBodyEnds(t *testing.T) {
	const timeout = 300 * time.Millisecond
	_, srv := newBodyServer(t, 0, 1, 0)
	c := registry.New(fastOptions(registry.Options{Timeout: timeout, Retries: -1}))
	rt, err := c.Transport(registry.Access{})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/v2/base/big/blobs/stall",     // blob: idle timeout
		"/v2/base/big/manifests/stall", // manifest: request timeout
	} {
		t.Run(path, func(t *testing.T) {
			body, _, err := read(t, rt, srv.URL+path)
			if err == nil {
				t.Fatalf("read %d bytes of a stalled body without error", len(body))
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v is not a timeout", err)
			}
			if string(body) != "a few bytes" {
				t.Errorf("read %q before the stall, want %q", body, "a few bytes")
			}
		})
	}
}

func TestSlowBlobBodyOutlivesRequestTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	// 64 KiB in 16 chunks, one every 100ms: about 1.5s in all, well past
	// the timeout, with no gap near it.
	b, srv := newBodyServer(t, 64<<10, 4<<10, 100*time.Millisecond)
	c := registry.New(fastOptions(registry.Options{Timeout: timeout, Retries: -1}))
	rt, err := c.Transport(registry.Access{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("direct", func(t *testing.T) {
		body, took, err := read(t, rt, srv.URL+"/v2/base/big/blobs/slow")
		if err != nil {
			t.Fatalf("reading a slow blob: %v", err)
		}
		if !bytes.Equal(body, b.data) {
			t.Fatalf("read %d bytes, want %d", len(body), len(b.data))
		}
		if took <= timeout {
			t.Fatalf("took %v, not longer than the timeout %v: the test proves nothing", took, timeout)
		}
	})

	t.Run("through go-containerregistry", func(t *testing.T) {
		host := strings.TrimPrefix(srv.URL, "http://")
		ref := mustDigest(t, host+"/base/big@"+b.digest())
		layer, err := remote.Layer(ref, remote.WithTransport(rt))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatalf("opening the layer: %v", err)
		}
		defer rc.Close()
		body, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("reading the layer: %v", err)
		}
		if !bytes.Equal(body, b.data) {
			t.Fatalf("read %d bytes, want %d", len(body), len(b.data))
		}
	})

	t.Run("manifest bodies keep the request timeout", func(t *testing.T) {
		_, _, err := read(t, rt, srv.URL+"/v2/base/big/manifests/slow")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("reading a slow manifest: err = %v, want a timeout", err)
		}
	})
}

// TestBlobRedirectKeepsIdleTimeout follows a blob redirect to storage on
// another host, whose path does not name a blob.
func TestBlobRedirectKeepsIdleTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	b, storage := newBodyServer(t, 64<<10, 4<<10, 100*time.Millisecond)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, storage.URL+"/v2/storage/slow?sig="+fmt.Sprint(time.Now().UnixNano()), http.StatusTemporaryRedirect)
	}))
	defer origin.Close()
	c := registry.New(fastOptions(registry.Options{Timeout: timeout, Retries: -1}))
	rt, err := c.Transport(registry.Access{})
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := read(t, rt, origin.URL+"/v2/base/big/blobs/"+b.digest())
	if err != nil {
		t.Fatalf("reading a slow redirected blob: %v", err)
	}
	if !bytes.Equal(body, b.data) {
		t.Fatalf("read %d bytes, want %d", len(body), len(b.data))
	}
}
