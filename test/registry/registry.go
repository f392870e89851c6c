// Package registrytest runs in-process OCI registries on loopback for tests
// and local playgrounds. It wraps go-containerregistry's pkg/registry with
// optional basic authentication, TLS, request counting and fault injection.
package registrytest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// Option configures a Registry.
type Option func(*config)

type config struct {
	user, pass string
	basicAuth  bool
	tls        bool
	certHosts  []string
	notBefore  time.Time
	notAfter   time.Time
	middleware []func(http.Handler) http.Handler
}

// WithBasicAuth requires HTTP basic authentication with the given username and
// password on every request. Requests without them, or with wrong ones, are
// answered 401 with a Basic challenge.
func WithBasicAuth(user, pass string) Option {
	return func(c *config) {
		c.basicAuth = true
		c.user, c.pass = user, pass
	}
}

// WithTLS serves HTTPS with a self-signed certificate valid for 127.0.0.1.
// Use Registry.Transport or Registry.CertPool to trust it.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithCertificate serves HTTPS with a certificate for hosts (DNS names or IP
// addresses) valid from notBefore to notAfter, issued by a certificate
// authority made for this registry. CAPEM returns that authority; CertPool
// and Transport trust it. A certificate for other hosts than the one used
// to reach the registry, or outside its validity, fails verification.
func WithCertificate(hosts []string, notBefore, notAfter time.Time) Option {
	return func(c *config) {
		c.tls = true
		c.certHosts = append([]string(nil), hosts...)
		c.notBefore, c.notAfter = notBefore, notAfter
	}
}

// WithMiddleware puts m in front of the OCI registry handler (after request
// counting, fault injection and basic authentication), to answer some
// requests differently, such as with authentication challenges. Later
// options wrap earlier ones.
func WithMiddleware(m func(next http.Handler) http.Handler) Option {
	return func(c *config) { c.middleware = append(c.middleware, m) }
}

// Registry is an in-process OCI registry listening on a loopback address.
// It is safe for concurrent use.
type Registry struct {
	// Host is the registry's address as used in image references, such as
	// 127.0.0.1:41234.
	Host string

	server *httptest.Server
	cfg    config
	ca     *x509.Certificate

	mu        sync.Mutex
	requests  int
	manifests map[string]int
	blobs     int
	pings     int
	faults    []*fault
}

type fault struct {
	prefix     string
	status     int
	remaining  int // <0: until cleared
	retryAfter time.Duration
}

// New starts a registry on a random loopback port and closes it when the
// test ends.
func New(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r, err := NewServer("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatalf("starting test registry: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// NewServer starts a registry listening on addr, which must be a loopback
// address such as 127.0.0.1:5050 (port 0 picks a free port). Call Close to
// stop it.
func NewServer(addr string, opts ...Option) (*Registry, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parsing registry address: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("registry address %q is not a loopback IP address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}

	r := &Registry{manifests: map[string]int{}}
	for _, o := range opts {
		o(&r.cfg)
	}
	var inner http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	for _, m := range r.cfg.middleware {
		inner = m(inner)
	}
	r.server = &httptest.Server{
		Listener: ln,
		Config:   &http.Server{Handler: r.handler(inner), ReadHeaderTimeout: 10 * time.Second},
	}
	if r.cfg.certHosts != nil {
		ca, leaf, err := issue(r.cfg.certHosts, r.cfg.notBefore, r.cfg.notAfter)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		r.ca = ca
		r.server.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
	}
	if r.cfg.tls {
		r.server.StartTLS()
	} else {
		r.server.Start()
	}
	r.Host = ln.Addr().String()
	return r, nil
}

// Close stops the registry. It is safe to call more than once.
func (r *Registry) Close() {
	r.mu.Lock()
	s := r.server
	r.server = nil
	r.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// URL returns the registry's base URL, such as http://127.0.0.1:41234.
func (r *Registry) URL() string {
	if r.cfg.tls {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// CertPool returns a pool trusting the registry's TLS certificate, or nil
// when the registry serves plain HTTP.
func (r *Registry) CertPool() *x509.CertPool {
	if !r.cfg.tls {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(r.authority())
	return pool
}

// CAPEM returns the PEM encoding of the certificate authority that issued
// the registry's TLS certificate, or nil when the registry serves plain
// HTTP.
func (r *Registry) CAPEM() []byte {
	if !r.cfg.tls {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.authority().Raw})
}

// authority is the certificate to trust for the registry: its own CA, or
// httptest's self-signed certificate.
func (r *Registry) authority() *x509.Certificate {
	if r.ca != nil {
		return r.ca
	}
	return r.server.Certificate()
}

// Transport returns a new HTTP transport that reaches the registry; when the
// registry serves TLS the transport trusts its certificate.
func (r *Registry) Transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	if pool := r.CertPool(); pool != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return t
}

// Requests returns the number of HTTP requests the registry has received
// since it started or since the last ResetCounts.
func (r *Registry) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// ManifestRequests returns the number of GET and HEAD requests for manifests
// of repository repo, such as "base/alpine".
func (r *Registry) ManifestRequests(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifests[repo]
}

// TotalManifestRequests returns the number of GET and HEAD requests for
// manifests of all repositories.
func (r *Registry) TotalManifestRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.manifests {
		n += c
	}
	return n
}

// BlobRequests returns the number of GET requests for blobs (layers and
// configs) of all repositories.
func (r *Registry) BlobRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobs
}

// Pings returns the number of requests for /v2/, the API version check
// clients send before authenticating.
func (r *Registry) Pings() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pings
}

// ResetCounts sets all request counters to zero.
func (r *Registry) ResetCounts() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests, r.blobs, r.pings = 0, 0, 0
	r.manifests = map[string]int{}
}

// FailWith makes the next times requests whose path starts with pathPrefix
// (such as "/v2/base/alpine/manifests/") answer status, with a registry
// error body where one applies. A negative times fails every such request
// until ClearFaults.
func (r *Registry) FailWith(pathPrefix string, status int, times int) {
	r.FailWithRetryAfter(pathPrefix, status, times, 0)
}

// FailWithRetryAfter is like FailWith and adds a Retry-After header of the
// given duration, rounded up to whole seconds, when after is positive.
func (r *Registry) FailWithRetryAfter(pathPrefix string, status int, times int, after time.Duration) {
	if times == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, &fault{prefix: pathPrefix, status: status, remaining: times, retryAfter: after})
}

// ClearFaults removes all injected faults.
func (r *Registry) ClearFaults() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = nil
}

func (r *Registry) handler(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f := r.record(req)
		if f != nil {
			writeFault(w, req, f)
			return
		}
		if r.cfg.basicAuth {
			user, pass, ok := req.BasicAuth()
			if !ok || user != r.cfg.user || pass != r.cfg.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
				writeError(w, req, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
				return
			}
		}
		inner.ServeHTTP(w, req)
	})
}

// record counts req and returns the fault it must answer, if any.
func (r *Registry) record(req *http.Request) *fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if req.URL.Path == "/v2/" || req.URL.Path == "/v2" {
		r.pings++
	}
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		if repo, ok := manifestRepo(req.URL.Path); ok {
			r.manifests[repo]++
		}
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			r.blobs++
		}
	}
	for i, f := range r.faults {
		if !strings.HasPrefix(req.URL.Path, f.prefix) {
			continue
		}
		if f.remaining > 0 {
			f.remaining--
			if f.remaining == 0 {
				r.faults = append(r.faults[:i:i], r.faults[i+1:]...)
			}
		}
		return f
	}
	return nil
}

// manifestRepo returns the repository of a /v2/<repo>/manifests/<ref> path.
func manifestRepo(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 || strings.Contains(rest[i+len("/manifests/"):], "/") {
		return "", false
	}
	return rest[:i], true
}

func writeFault(w http.ResponseWriter, req *http.Request, f *fault) {
	if f.retryAfter > 0 {
		secs := int((f.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	code, msg := "UNKNOWN", "injected fault"
	switch {
	case f.status == http.StatusUnauthorized:
		code = "UNAUTHORIZED"
		w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
	case f.status == http.StatusForbidden:
		code = "DENIED"
	case f.status == http.StatusNotFound:
		code = "MANIFEST_UNKNOWN"
		if strings.Contains(req.URL.Path, "/blobs/") {
			code = "BLOB_UNKNOWN"
		}
	case f.status == http.StatusTooManyRequests:
		code = "TOOMANYREQUESTS"
	case f.status >= 500:
		code = "UNAVAILABLE"
	}
	writeError(w, req, f.status, code, msg)
}

func writeError(w http.ResponseWriter, req *http.Request, status int, code, msg string) {
	body := fmt.Sprintf(`{"errors":[{"code":%q,"message":%q}]}`, code, msg)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}
