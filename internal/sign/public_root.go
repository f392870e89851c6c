package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"golang.org/x/sync/singleflight"
)

// DefaultTUFMirror is the TUF repository of the public Sigstore instance.
const DefaultTUFMirror = tuf.DefaultMirror

// trustedRootTarget is the TUF target that holds the trusted root.
const trustedRootTarget = "trusted_root.json"

// ErrPublicRootOffline is returned by PublicRoot.TrustedRoot when no TUF
// mirror is configured: the public Sigstore trusted root is never
// fetched, and trust that needs a root must name one.
var ErrPublicRootOffline = errors.New("the public Sigstore trusted root is not used: no TUF mirror is configured")

// ErrPublicRootUnavailable is wrapped by PublicRoot.TrustedRoot's errors
// when the TUF mirror could not be read or what it served did not verify;
// a later call may succeed.
var ErrPublicRootUnavailable = errors.New("the public Sigstore trusted root cannot be fetched")

// PublicRootOptions configures a PublicRoot. Zero values take the
// defaults.
type PublicRootOptions struct {
	// Mirror is the base URL of the TUF repository, such as
	// DefaultTUFMirror. Empty means offline: nothing is fetched.
	Mirror string
	// Root is the TUF root.json trusted to start with; nil means the
	// public Sigstore root embedded in sigstore-go. A private mirror needs
	// its own.
	Root []byte
	// CacheDir keeps the TUF metadata and targets across restarts; when
	// the mirror cannot be reached, unexpired cached metadata is used.
	// Empty keeps them in memory only.
	CacheDir string
	// Refresh is how long a fetched trusted root is used before the mirror
	// is asked again; default 24h.
	Refresh time.Duration
	// RetryAfter is how long after a failed fetch the mirror is left alone
	// (the last good trusted root, if any, is used meanwhile); default 1m.
	RetryAfter time.Duration
	// Timeout bounds one request to the mirror; default 30s.
	Timeout time.Duration
	// Transport carries the requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Now is the clock for Refresh and RetryAfter; default time.Now.
	Now func() time.Time
}

// PublicRoot supplies the trusted root of the public Sigstore instance (or
// of a private one with its own TUF repository), fetched and verified with
// TUF, for trust that names no trusted root of its own. It is safe for
// concurrent use; concurrent fetches are merged into one.
type PublicRoot struct {
	o     PublicRootOptions
	group singleflight.Group

	mu      sync.Mutex
	root    []byte    // the last good trusted_root.json
	fetched time.Time // when root was fetched
	failed  time.Time // when the last fetch failed
	err     error     // why it failed
}

// NewPublicRoot checks o and returns a PublicRoot that has fetched
// nothing yet.
func NewPublicRoot(o PublicRootOptions) (*PublicRoot, error) {
	if o.Mirror != "" {
		u, err := url.Parse(o.Mirror)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("the TUF mirror %q is not an http or https URL", o.Mirror)
		}
	}
	if o.Root != nil && !json.Valid(o.Root) {
		return nil, errors.New("the TUF root is not JSON")
	}
	if o.Root == nil {
		o.Root = tuf.DefaultRoot()
	}
	o.Refresh = verifyDefault(o.Refresh, 24*time.Hour)
	o.RetryAfter = verifyDefault(o.RetryAfter, time.Minute)
	o.Timeout = verifyDefault(o.Timeout, 30*time.Second)
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &PublicRoot{o: o}, nil
}

// Offline tells whether no mirror is configured.
func (p *PublicRoot) Offline() bool { return p.o.Mirror == "" }

// TrustedRoot returns the trusted_root.json of the TUF repository. The
// first call fetches it; it is fetched again once Refresh has passed. When
// a fetch fails, the last good trusted root is returned if there is one;
// otherwise the error wraps ErrPublicRootUnavailable, and the mirror is
// not asked again before RetryAfter (the same error is returned
// meanwhile). Offline, the error is ErrPublicRootOffline.
func (p *PublicRoot) TrustedRoot(ctx context.Context) ([]byte, error) {
	if p.Offline() {
		return nil, ErrPublicRootOffline
	}
	now := p.o.Now()
	p.mu.Lock()
	fresh := p.root != nil && now.Sub(p.fetched) < p.o.Refresh
	waiting := p.err != nil && now.Sub(p.failed) < p.o.RetryAfter
	last, lastErr := p.root, p.err
	p.mu.Unlock()
	switch {
	case fresh:
		return last, nil
	case waiting && last != nil:
		return last, nil
	case waiting:
		return nil, lastErr
	}

	ch := p.group.DoChan("", func() (any, error) {
		b, err := p.fetch()
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			p.failed, p.err = p.o.Now(), fmt.Errorf("%w: %v", ErrPublicRootUnavailable, err)
			if p.root != nil {
				return p.root, nil
			}
			return nil, p.err
		}
		p.root, p.fetched, p.err = b, p.o.Now(), nil
		return b, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrPublicRootUnavailable, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	}
}

// fetch runs a TUF update against the mirror and reads the trusted root
// target. When the mirror cannot be reached, unexpired metadata in the
// cache directory is used instead.
func (p *PublicRoot) fetch() ([]byte, error) {
	b, err := p.fetchWith(false)
	if err != nil && p.o.CacheDir != "" {
		if cached, cerr := p.fetchWith(true); cerr == nil {
			return cached, nil
		}
	}
	return b, err
}

func (p *PublicRoot) fetchWith(forceCache bool) ([]byte, error) {
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPClient(&http.Client{Transport: p.o.Transport, Timeout: p.o.Timeout})
	f.SetHTTPUserAgent("plinth")
	opts := &tuf.Options{
		Root:              p.o.Root,
		RepositoryBaseURL: p.o.Mirror,
		Fetcher:           f,
		ForceCache:        forceCache,
	}
	if p.o.CacheDir == "" {
		opts.DisableLocalCache = true
	} else {
		opts.CachePath = filepath.Clean(p.o.CacheDir)
	}
	c, err := tuf.New(opts)
	if err != nil {
		return nil, err
	}
	b, err := c.GetTarget(trustedRootTarget)
	if err != nil {
		return nil, err
	}
	if _, err := root.NewTrustedRootFromJSON(b); err != nil {
		return nil, fmt.Errorf("the %s target is not a Sigstore trusted root: %w", trustedRootTarget, err)
	}
	return b, nil
}
