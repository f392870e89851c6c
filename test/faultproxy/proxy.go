// Package faultproxy is a reverse proxy on loopback that sits in front of a
// test registry and injects faults: error statuses with or without
// Retry-After, hanging connections, slow and truncated bodies, generated
// oversized manifests and indexes, hostile layers and authentication
// challenges that point elsewhere. Rules match request paths by prefix or
// regular expression; the proxy counts the requests it receives per path,
// per Host header and per Authorization header.
package faultproxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault answers a request that matched a rule. next is the upstream
// registry, for faults that change its answer rather than replace it. A
// fault that waits must return when r's context is done: the proxy cancels
// it when the client goes away or the proxy closes.
type Fault func(w http.ResponseWriter, r *http.Request, next http.Handler)

// Rule applies a fault to the requests whose path starts with Prefix, or
// matches Pattern when it is set, and whose method is Method when it is not
// empty.
type Rule struct {
	// Prefix is a path prefix, such as "/v2/base/alpine/manifests/".
	Prefix string
	// Pattern, when set, is matched against the path instead of Prefix.
	Pattern *regexp.Regexp
	// Method restricts the rule to one HTTP method; empty matches all.
	Method string
	// Times is how many requests the rule answers before it is removed;
	// zero means every request until Clear.
	Times int
	// Fault is the answer.
	Fault Fault
}

func (r *Rule) matches(req *http.Request) bool {
	if r.Method != "" && r.Method != req.Method {
		return false
	}
	if r.Pattern != nil {
		return r.Pattern.MatchString(req.URL.Path)
	}
	return strings.HasPrefix(req.URL.Path, r.Prefix)
}

// Proxy is a fault-injecting reverse proxy listening on loopback. It is
// safe for concurrent use.
type Proxy struct {
	// Host is the proxy's address as used in image references, such as
	// 127.0.0.1:41234.
	Host string

	server   *httptest.Server
	upstream http.Handler
	ctx      context.Context
	cancel   context.CancelFunc
	inflight sync.WaitGroup

	mu    sync.Mutex
	rules []*Rule
	total int
	paths map[string]int
	hosts map[string]int
	auth  map[string]int
	times []time.Time
}

// New starts a proxy to the registry at upstream (a URL such as
// http://127.0.0.1:5000) on a random loopback port and closes it when the
// test ends.
func New(t testing.TB, upstream string) *Proxy {
	t.Helper()
	p, err := NewServer("127.0.0.1:0", upstream)
	if err != nil {
		t.Fatalf("starting fault proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewServer starts a proxy to upstream listening on addr, which must be a
// loopback address; upstream must be on loopback too. Call Close to stop
// it.
func NewServer(addr, upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("parsing upstream URL: %w", err)
	}
	if err := loopback(u.Host); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	if err := loopback(addr); err != nil {
		return nil, fmt.Errorf("proxy address: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil, DisableCompression: true}
	rp.ErrorLog = nil
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	p := &Proxy{upstream: rp, paths: map[string]int{}, hosts: map[string]int{}, auth: map[string]int{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}}
	p.server.Start()
	p.Host = ln.Addr().String()
	return p, nil
}

func loopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("parsing address %q: %w", hostport, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not a loopback IP address", hostport)
	}
	return nil
}

// Close stops the proxy: waiting faults return, connections close, and
// Close returns once every handler has. It is safe to call more than once.
func (p *Proxy) Close() {
	p.cancel()
	p.server.Close()
	p.inflight.Wait()
}

// URL returns the proxy's base URL, such as http://127.0.0.1:41234.
func (p *Proxy) URL() string { return "http://" + p.Host }

// Add installs rules; the first matching rule answers a request, in the
// order they were added.
func (p *Proxy) Add(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range rules {
		r := rules[i]
		if r.Fault == nil {
			panic("faultproxy: rule without a fault")
		}
		p.rules = append(p.rules, &r)
	}
}

// Clear removes every rule.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Requests returns how many requests the proxy received.
func (p *Proxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// RequestsTo returns how many requests had paths starting with prefix.
func (p *Proxy) RequestsTo(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for path, c := range p.paths {
		if strings.HasPrefix(path, prefix) {
			n += c
		}
	}
	return n
}

// RequestsFor returns how many requests carried the Host header host.
func (p *Proxy) RequestsFor(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hosts[host]
}

// Authorizations returns how many requests carried each Authorization
// header value; requests without one count under "".
func (p *Proxy) Authorizations() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.auth))
	for k, v := range p.auth {
		out[k] = v
	}
	return out
}

// Arrivals returns the times at which requests arrived, in order.
func (p *Proxy) Arrivals() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.times...)
}

// ResetCounts sets every counter to zero.
func (p *Proxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = 0
	p.paths, p.hosts, p.auth = map[string]int{}, map[string]int{}, map[string]int{}
	p.times = nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.inflight.Add(1)
	defer p.inflight.Done()
	// Waiting faults end with the client or with the proxy.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	r = r.WithContext(ctx)

	if f := p.record(r); f != nil {
		f(w, r, p.upstream)
		return
	}
	p.upstream.ServeHTTP(w, r)
}

// record counts r and returns the fault of the first rule it matches.
func (p *Proxy) record(r *http.Request) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	p.paths[r.URL.Path]++
	p.hosts[r.Host]++
	p.auth[r.Header.Get("Authorization")]++
	p.times = append(p.times, time.Now())
	for i, rule := range p.rules {
		if !rule.matches(r) {
			continue
		}
		if rule.Times > 0 {
			rule.Times--
			if rule.Times == 0 {
				p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			}
		}
		return rule.Fault
	}
	return nil
}
