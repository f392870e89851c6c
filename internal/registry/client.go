// Package registry is plinth's access to OCI registries: it resolves tags to
// digests, reads manifests and configs, turns pull Secrets into credentials,
// matches references against allowed registries, and classifies failures
// into stable, typed errors. Requests are polite: rate limited per host,
// bounded in time and size, and retried with backoff that honours
// Retry-After.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Defaults applied to zero Options fields.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultRateLimit        = 100.0
	DefaultBurst            = 100
	DefaultMaxManifestBytes = 4 << 20
	DefaultRetries          = 3
	DefaultRetryBackoff     = 500 * time.Millisecond
	DefaultMaxRetryAfter    = 30 * time.Second
)

// maxPullers bounds the cache of authenticated transports; when it is full
// the cache starts over.
const maxPullers = 1024

// maxFacts bounds the cache of what Inspect read of image manifests and
// configs, by digest (a few hundred bytes each); when it is full the cache
// starts over.
const maxFacts = 16384

// Options configures a Client. The zero value gives the defaults.
type Options struct {
	// Transport is the base HTTP transport. Nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// UserAgent is sent with every request, before go-containerregistry's own.
	UserAgent string
	// Timeout bounds each HTTP request attempt. Default DefaultTimeout.
	Timeout time.Duration
	// RateLimit is the number of requests per second allowed per registry
	// host. A host that answers 429 is sent fewer, for a while. Default
	// DefaultRateLimit.
	RateLimit float64
	// Burst is the rate limiter's bucket size per host. Default DefaultBurst.
	Burst int
	// MaxManifestBytes refuses manifests, indexes and image configs larger
	// than this many bytes. Default DefaultMaxManifestBytes.
	MaxManifestBytes int64
	// Retries is how many times a request failing with 429, 5xx or a
	// network error is retried. Zero means DefaultRetries; negative means
	// no retries.
	Retries int
	// RetryBackoff is the wait before the first retry; it doubles with each
	// further retry. Default DefaultRetryBackoff.
	RetryBackoff time.Duration
	// MaxRetryAfter caps the wait a registry can ask for with Retry-After,
	// and the backoff. Default DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

// Client talks to OCI registries politely. It keeps one authenticated
// transport per registry (with its scheme), credential and certificate
// bundle, so that repeated requests do not repeat the /v2/ ping and token
// exchange. All its transports share one rate limiter per registry host. It
// is safe for concurrent use.
type Client struct {
	base        http.RoundTripper
	transport   *politeTransport
	userAgent   string
	maxManifest int64

	mu      sync.Mutex
	pullers map[pullerKey]*remote.Puller
	trusted map[string]*politeTransport // by caKey
	// tagTransports read tag lists, by repository (in registry), credentials
	// and certificate bundle.
	tagTransports map[pullerKey]http.RoundTripper

	// facts are the platform, creation time and annotations read of image
	// manifests and configs, by digest: content that never changes.
	facts factCache

	// setups makes one puller at a time per key.
	setups singleflight.Group
}

// factCache keeps imageFacts by digest, at most maxFacts of them.
type factCache struct {
	mu sync.Mutex
	m  map[string]*imageFacts
}

func (fc *factCache) get(digest string) (*imageFacts, bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	f, ok := fc.m[digest]
	return f, ok
}

func (fc *factCache) put(digest string, f *imageFacts) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.m == nil || len(fc.m) >= maxFacts {
		fc.m = map[string]*imageFacts{}
	}
	fc.m[digest] = f
}

// digestOf is the sha256 digest of content, as a string.
func digestOf(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256:" + hex.EncodeToString(sum[:])
}

type pullerKey struct {
	registry    string // scheme://host[:port]
	fingerprint string
	ca          string
}

// New returns a Client with o's settings.
func New(o Options) *Client {
	base := o.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	t := &politeTransport{
		next:          base,
		userAgent:     o.UserAgent,
		timeout:       positiveOr(o.Timeout, DefaultTimeout),
		retries:       o.Retries,
		backoff:       positiveOr(o.RetryBackoff, DefaultRetryBackoff),
		maxRetryAfter: positiveOr(o.MaxRetryAfter, DefaultMaxRetryAfter),
		maxManifest:   positiveOr(o.MaxManifestBytes, DefaultMaxManifestBytes),
		limiters: &hostLimiters{
			limit: rate.Limit(positiveOr(o.RateLimit, DefaultRateLimit)),
			burst: positiveOr(o.Burst, DefaultBurst),
			m:     map[string]*hostLimiter{},
		},
	}
	switch {
	case o.Retries == 0:
		t.retries = DefaultRetries
	case o.Retries < 0:
		t.retries = 0
	}
	return &Client{
		base:        base,
		transport:   t,
		userAgent:   o.UserAgent,
		maxManifest: t.maxManifest,
		pullers:     map[pullerKey]*remote.Puller{},
		trusted:     map[string]*politeTransport{},
	}
}

func positiveOr[T int | int64 | float64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Transport returns the polite HTTP transport (per-host rate limit shared
// with every other transport of c, timeouts, retries honouring Retry-After,
// manifest size limit, idle timeout on blob bodies) trusting a.CAPEM in
// addition to the system's authorities, for other code that reaches
// registries. It adds no credentials: wrap it with go-containerregistry's
// authentication (remote.WithTransport with remote.WithAuthFromKeychain
// does). a.Keychain and a.Insecure do not change it; plain HTTP is chosen by
// the reference's scheme (see Access.Reference). An unusable a.CAPEM gives
// an *Error of kind KindTLS.
func (c *Client) Transport(a Access) (http.RoundTripper, error) {
	t, _, err := c.transportFor(a.CAPEM)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Head resolves ref, a tag or digest reference, to the descriptor of its
// manifest, reaching the registry as a says (with a.Insecure, plain HTTP is
// allowed even if ref was parsed without name.Insecure). With a warm
// transport for the registry, credentials and certificate bundle this is a
// single manifest HEAD request. If the registry does not answer HEAD with a
// digest, Head falls back to GET.
func (c *Client) Head(ctx context.Context, ref name.Reference, a Access) (*v1.Descriptor, error) {
	ref, err := a.reference(ref)
	if err != nil {
		return nil, err
	}
	p, anonymous, err := c.puller(ctx, ref.Context(), a)
	if err != nil {
		return nil, err
	}
	desc, err := p.Head(ctx, ref)
	if err == nil {
		return desc, nil
	}
	if !headUnsupported(ctx, err) {
		return nil, classify(err, anonymous)
	}
	d, err := p.Get(ctx, ref)
	if err != nil {
		return nil, classify(err, anonymous)
	}
	return &d.Descriptor, nil
}

// headUnsupported tells whether a HEAD failure means the registry does not
// serve HEAD properly (no digest header, 405, 501) rather than a failure a
// GET would meet too.
func headUnsupported(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusMethodNotAllowed || te.StatusCode == http.StatusNotImplemented
	}
	var ue *url.Error
	return !errors.As(err, &ue) && classifyKnown(err, false) == nil
}

// credentials resolves the credentials a.Keychain gives for repo, and
// tells whether they are anonymous.
func credentials(ctx context.Context, repo name.Repository, a Access) (*authn.AuthConfig, bool, error) {
	kc := a.Keychain
	if kc == nil {
		kc = authn.NewMultiKeychain()
	}
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, false, &Error{Kind: KindUnauthorized, Message: "registry credentials could not be resolved", Err: err}
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return nil, false, &Error{Kind: KindUnauthorized, Message: "registry credentials could not be resolved", Err: err}
	}
	return cfg, *cfg == authn.AuthConfig{}, nil
}

// puller returns the cached puller for repo's registry, the credentials
// a.Keychain gives for repo and a's certificate bundle, and whether those
// credentials are anonymous.
func (c *Client) puller(ctx context.Context, repo name.Repository, a Access) (*remote.Puller, bool, error) {
	cfg, anonymous, err := credentials(ctx, repo, a)
	if err != nil {
		return nil, false, err
	}
	t, ca, err := c.transportFor(a.CAPEM)
	if err != nil {
		return nil, anonymous, err
	}
	key := pullerKey{registry: repo.Registry.Scheme() + "://" + repo.RegistryStr(), fingerprint: fingerprint(cfg), ca: ca}

	c.mu.Lock()
	p, ok := c.pullers[key]
	c.mu.Unlock()
	if ok {
		return p, anonymous, nil
	}
	// Concurrent first requests for one key share one set-up, and one ping.
	v, err, _ := c.setups.Do(fmt.Sprintf("%s|%s|%s", key.registry, key.fingerprint, key.ca), func() (any, error) {
		return c.newPuller(ctx, repo, key, authn.FromConfig(*cfg), t)
	})
	if err != nil {
		return nil, anonymous, classify(err, anonymous)
	}
	return v.(*remote.Puller), anonymous, nil
}

// newPuller makes and caches the puller for key.
func (c *Client) newPuller(ctx context.Context, repo name.Repository, key pullerKey, auth authn.Authenticator, t http.RoundTripper) (*remote.Puller, error) {
	c.mu.Lock()
	p, ok := c.pullers[key]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	// go-containerregistry pings /v2/ for each repository it reads, to learn
	// how the registry authenticates. A registry that is open or asks for
	// basic credentials answers the same for every repository: one ping per
	// registry and credential is enough, and its answer is reused.
	// Credentials go to the registry and its token service on the same
	// site, never to another host a challenge names.
	tr, err := c.sharedAuthTransport(ctx, repo, auth, ScopeCredentials(t, repo.Registry))
	if err != nil {
		return nil, err
	}
	never := func(error) bool { return false }
	p, err = remote.NewPuller(
		remote.WithAuth(auth),
		remote.WithTransport(tr),
		remote.WithUserAgent(c.userAgent),
		// Retries happen in the polite transport, which honours Retry-After.
		remote.WithRetryStatusCodes(),
		remote.WithRetryPredicate(never),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Message: "registry client could not be configured", Err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pullers) >= maxPullers {
		c.pullers = map[pullerKey]*remote.Puller{}
	}
	c.pullers[key] = p
	return p, nil
}

// errBearer stops the set-up of a shared transport for a registry that
// hands out tokens per repository.
var errBearer = errors.New("registry asks for bearer tokens")

// sharedAuthTransport pings repo's registry and, when the registry is open or
// asks for basic credentials, returns an authenticated transport every
// repository of the registry can use without another ping. For a registry
// asking for bearer tokens, which are scoped to a repository, it returns t:
// the puller exchanges a token for each repository it reads.
func (c *Client) sharedAuthTransport(ctx context.Context, repo name.Repository, auth authn.Authenticator, t http.RoundTripper) (http.RoundTripper, error) {
	rec := &challengeRecorder{next: t}
	w, err := transport.NewWithContext(ctx, repo.Registry, auth, transport.NewUserAgent(rec, c.userAgent), []string{repo.Scope(transport.PullScope)})
	rec.done.Store(true)
	if errors.Is(err, errBearer) || rec.bearer.Load() {
		return t, nil
	}
	if err != nil {
		return nil, err
	}
	if _, ok := w.(*transport.Wrapper); !ok {
		return t, nil
	}
	return w, nil
}

// challengeRecorder notes whether the registry's answer to the /v2/ ping
// asks for bearer tokens, and then refuses the token exchange that would
// follow.
type challengeRecorder struct {
	next   http.RoundTripper
	bearer atomic.Bool
	done   atomic.Bool
}

func (r *challengeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.done.Load() {
		return r.next.RoundTrip(req)
	}
	if r.bearer.Load() {
		return nil, errBearer
	}
	resp, err := r.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && strings.TrimSuffix(req.URL.Path, "/") == "/v2" &&
		strings.HasPrefix(strings.ToLower(resp.Header.Get("WWW-Authenticate")), "bearer") {
		r.bearer.Store(true)
	}
	return resp, err
}

// fingerprint identifies credentials without keeping them in clear.
func fingerprint(cfg *authn.AuthConfig) string {
	h := sha256.New()
	for _, s := range []string{cfg.Username, cfg.Password, cfg.Auth, cfg.IdentityToken, cfg.RegistryToken} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
