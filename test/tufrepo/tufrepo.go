// Package tufrepo serves a TUF repository on loopback, signed with a key
// of its own, for tests of clients that fetch a Sigstore trusted root the
// way sigstore-go does (consistent snapshots, targets prefixed with their
// hash).
package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Repo is a TUF repository served over HTTP on 127.0.0.1.
type Repo struct {
	// URL is the repository's base URL, a client's mirror.
	URL string
	// Root is the signed root.json (version 1), a client's trust anchor.
	Root []byte

	srv   *httptest.Server
	files map[string][]byte

	mu       sync.Mutex
	requests int
	down     bool
	tampered bool
}

// New signs root, targets, snapshot and timestamp metadata listing
// targets (name to content), valid for a day, and serves them until the
// test ends.
func New(t testing.TB, targets map[string][]byte) *Repo {
	t.Helper()
	r, err := build(targets, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

func build(targets map[string][]byte, expires time.Time) (*Repo, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := signature.LoadSigner(priv, crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	key, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}

	tg := metadata.Targets(expires)
	for name, content := range targets {
		tf, err := metadata.TargetFile().FromBytes(name, content, "sha256")
		if err != nil {
			return nil, err
		}
		tg.Signed.Targets[name] = tf
		sum := sha256.Sum256(content)
		files["targets/"+hex.EncodeToString(sum[:])+"."+name] = content
	}
	root := metadata.Root(expires)
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if err := root.Signed.AddKey(key, role); err != nil {
			return nil, err
		}
	}
	sn := metadata.Snapshot(expires)
	ts := metadata.Timestamp(expires)

	sign := func(name string, md interface {
		Sign(signature.Signer) (*metadata.Signature, error)
		ToBytes(bool) ([]byte, error)
	}) ([]byte, error) {
		if _, err := md.Sign(signer); err != nil {
			return nil, fmt.Errorf("signing %s: %w", name, err)
		}
		b, err := md.ToBytes(false)
		if err != nil {
			return nil, err
		}
		files[name] = b
		return b, nil
	}
	rootJSON, err := sign("1.root.json", root)
	if err != nil {
		return nil, err
	}
	if _, err := sign("1.targets.json", tg); err != nil {
		return nil, err
	}
	if _, err := sign("1.snapshot.json", sn); err != nil {
		return nil, err
	}
	if _, err := sign("timestamp.json", ts); err != nil {
		return nil, err
	}
	return &Repo{Root: rootJSON, files: files}, nil
}

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests++
	down, tampered := r.down, r.tampered
	r.mu.Unlock()
	if down {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	name := strings.TrimPrefix(req.URL.Path, "/")
	b, ok := r.files[name]
	if !ok {
		http.NotFound(w, req)
		return
	}
	if tampered && strings.HasPrefix(name, "targets/") {
		b = append([]byte(" "), b...)
	}
	_, _ = w.Write(b)
}

// Requests returns the number of requests served or refused so far.
func (r *Repo) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// SetDown makes the repository answer every request with 503 (true), or
// serve again (false).
func (r *Repo) SetDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// SetTampered makes the repository serve targets whose content does not
// match the signed targets metadata.
func (r *Repo) SetTampered(tampered bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tampered = tampered
}
