package faultproxy_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/test/faultproxy"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

const manifests = "/v2/base/alpine/manifests/"

// fixture is a registry holding one image, behind a fault proxy.
type fixture struct {
	reg    *registrytest.Registry
	proxy  *faultproxy.Proxy
	tag    name.Reference // through the proxy
	digest name.Digest    // through the proxy
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	reg := registrytest.New(t)
	img, err := imagetest.Image(imagetest.ImageOptions{Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), OS: "linux", Architecture: "amd64",
		Files: map[string]string{"etc/motd": "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := imagetest.PushImage(context.Background(), reg.Host+"/base/alpine:3.22", img)
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.New(t, reg.URL())
	tag, err := name.ParseReference(p.Host + "/base/alpine:3.22")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{reg: reg, proxy: p, tag: tag, digest: tag.Context().Digest(d)}
}

// client is a registry client with short timeouts and backoff, as the
// fault tests need, over opts.
func client(opts registry.Options) *registry.Client {
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 20 * time.Millisecond
	}
	if opts.MaxRetryAfter == 0 {
		opts.MaxRetryAfter = 200 * time.Millisecond
	}
	if opts.RateLimit == 0 {
		opts.RateLimit, opts.Burst = 1000, 1000
	}
	return registry.New(opts)
}

// A 429 or 5xx is retried a bounded number of times, waiting what
// Retry-After asks but never more than the cap, however absurd the ask.
func TestRetryAfterIsHonouredAndCapped(t *testing.T) {
	far := faultproxy.RetryAfterDate(time.Now().Add(10 * 365 * 24 * time.Hour))
	tests := []struct {
		name     string
		fault    faultproxy.Fault
		minWait  time.Duration // over the two retries
		maxWait  time.Duration
		maxRetry time.Duration
	}{
		{"429 without Retry-After", faultproxy.TooManyRequests(""), 40 * time.Millisecond, 2 * time.Second, 0},
		{"429 with Retry-After 1", faultproxy.TooManyRequests("1"), 2 * time.Second, 6 * time.Second, 5 * time.Second},
		{"429 with Retry-After 86400", faultproxy.TooManyRequests("86400"), 400 * time.Millisecond, 2 * time.Second, 0},
		{"429 with Retry-After in ten years", faultproxy.TooManyRequests(far), 400 * time.Millisecond, 2 * time.Second, 0},
		{"503 with Retry-After 86400", faultproxy.Status(http.StatusServiceUnavailable, "Retry-After", "86400"), 400 * time.Millisecond, 2 * time.Second, 0},
		{"500", faultproxy.Status(http.StatusInternalServerError), 40 * time.Millisecond, 2 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			c := client(registry.Options{Retries: 2, MaxRetryAfter: tt.maxRetry})
			// Two failures, then the registry answers: the third attempt
			// succeeds.
			f.proxy.Add(faultproxy.Rule{Prefix: manifests, Times: 2, Fault: tt.fault})
			start := time.Now()
			if _, err := c.Head(context.Background(), f.tag, registry.Access{}); err != nil {
				t.Fatalf("Head: %v", err)
			}
			took := time.Since(start)
			if n := f.proxy.RequestsTo(manifests); n != 3 {
				t.Errorf("manifest requests = %d, want 3", n)
			}
			if took < tt.minWait || took > tt.maxWait {
				t.Errorf("Head took %s, want between %s and %s", took, tt.minWait, tt.maxWait)
			}

			// Failing for good: retries stop after the bound, with a
			// retryable error.
			f.proxy.ResetCounts()
			f.proxy.Add(faultproxy.Rule{Prefix: manifests, Fault: tt.fault})
			_, err := c.Head(context.Background(), f.tag, registry.Access{})
			if !registry.Retryable(err) {
				t.Fatalf("err = %v, want a retryable error", err)
			}
			if n := f.proxy.RequestsTo(manifests); n != 3 {
				t.Errorf("manifest requests = %d, want 3 (one try and two retries)", n)
			}
		})
	}
}

// A connection that never answers ends at the request timeout, each
// attempt; closing the proxy afterwards leaves no goroutine behind.
func TestHangingConnectionsTimeOut(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		reg, err := registrytest.NewServer("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		p, err := faultproxy.NewServer("127.0.0.1:0", reg.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c := client(registry.Options{Timeout: 300 * time.Millisecond, Retries: 1})
		p.Add(faultproxy.Rule{Prefix: "/v2/", Fault: faultproxy.Hang()})
		ref, _ := name.ParseReference(p.Host + "/base/alpine:3.22")
		start := time.Now()
		_, err = c.Head(context.Background(), ref, registry.Access{})
		took := time.Since(start)
		if registry.KindOf(err) != registry.KindUnavailable || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("err = %v, want a timeout", err)
		}
		// One try and one retry of 300ms each, plus backoff.
		if took < 600*time.Millisecond || took > 5*time.Second {
			t.Errorf("Head took %s", took)
		}
		if n := p.Requests(); n != 2 {
			t.Errorf("requests = %d, want 2", n)
		}
		// A proxy closed while a request hangs returns at once.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _, _ = c.Head(ctx, ref, registry.Access{}) }()
		for p.Requests() < 3 {
			time.Sleep(5 * time.Millisecond)
		}
		closed := time.Now()
		p.Close()
		if d := time.Since(closed); d > time.Second {
			t.Errorf("Close took %s with a hanging request", d)
		}
		cancel()
	}()
	// Idle connections of clients and servers wind down; then the count is
	// back where it was.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// A blob body that stalls halfway fails after the idle timeout; a slow
// body that keeps coming is read to its end even when that takes longer
// than the timeout; a manifest that trickles past the timeout fails.
func TestSlowAndStalledBodies(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	config := regexp.MustCompile(`^/v2/base/alpine/blobs/`)

	c := client(registry.Options{Timeout: time.Second, Retries: -1})
	f.proxy.Add(faultproxy.Rule{Pattern: config, Fault: faultproxy.Truncate(100, true)})
	_, err := c.Inspect(context.Background(), f.digest, registry.Access{}, nil)
	if registry.KindOf(err) != registry.KindUnavailable || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("stalled config: err = %v, want a timeout", err)
	}

	f.proxy.Clear()
	c = client(registry.Options{Timeout: time.Second, Retries: -1})
	f.proxy.Add(faultproxy.Rule{Pattern: config, Fault: faultproxy.Slow(16, 60*time.Millisecond)})
	start := time.Now()
	info, err := c.Inspect(context.Background(), f.digest, registry.Access{}, nil)
	if err != nil {
		t.Fatalf("slow config: %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("slow config read in %s; the test needs it slower than the timeout", took)
	}
	if len(info.Platforms) != 1 || info.Platforms[0] != "linux/amd64" {
		t.Errorf("platforms = %v", info.Platforms)
	}

	f.proxy.Clear()
	c = client(registry.Options{Timeout: time.Second, Retries: -1})
	f.proxy.Add(faultproxy.Rule{Prefix: manifests, Method: http.MethodGet, Fault: faultproxy.Slow(16, 100*time.Millisecond)})
	_, err = c.Inspect(context.Background(), f.digest, registry.Access{}, nil)
	if registry.KindOf(err) != registry.KindUnavailable || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("slow manifest: err = %v, want a timeout", err)
	}
}

// A body cut short is a retryable failure, not a verdict on the image.
func TestTruncatedBodies(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := client(registry.Options{Retries: -1})
	f.proxy.Add(faultproxy.Rule{Prefix: manifests, Method: http.MethodGet, Fault: faultproxy.Truncate(40, false)})
	_, err := c.Inspect(context.Background(), f.digest, registry.Access{}, nil)
	if !registry.Retryable(err) {
		t.Fatalf("truncated manifest: err = %v, want a retryable error", err)
	}
	f.proxy.Clear()
	f.proxy.Add(faultproxy.Rule{Prefix: "/v2/base/alpine/blobs/", Fault: faultproxy.Truncate(40, false)})
	_, err = c.Inspect(context.Background(), f.digest, registry.Access{}, nil)
	if !registry.Retryable(err) {
		t.Fatalf("truncated config: err = %v, want a retryable error", err)
	}
	f.proxy.Clear()
	if _, err := c.Inspect(context.Background(), f.digest, registry.Access{}, nil); err != nil {
		t.Fatalf("after the fault: %v", err)
	}
}

// Every request to a host waits for the host's rate limiter: an index of
// 64 platforms is read no faster than the limit allows.
func TestRateLimitPerHost(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	p := faultproxy.New(t, reg.URL())
	idx, err := faultproxy.WideIndex(64)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.ServeIndex("base/wide", "1", idx)
	if err != nil {
		t.Fatal(err)
	}
	const rate, burst = 100.0, 10
	c := client(registry.Options{RateLimit: rate, Burst: burst})
	ref, _ := name.NewDigest(p.Host + "/base/wide@" + d)
	start := time.Now()
	info, err := c.Inspect(context.Background(), ref, registry.Access{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if len(info.Platforms) != 64 {
		t.Errorf("platforms = %d, want 64", len(info.Platforms))
	}
	// The /v2/ ping, the index, then a manifest and a config per platform.
	n := p.Requests()
	if n != 2+64+64 {
		t.Errorf("requests = %d, want %d", n, 2+64+64)
	}
	if minTook := time.Duration(float64(n-burst) / rate * float64(time.Second)); took < minTook {
		t.Errorf("%d requests took %s, faster than the limit allows (%s)", n, took, minTook)
	}
	// Over any window, at most burst plus rate times the window arrived
	// (with a little slack for scheduling on a busy machine).
	arr := p.Arrivals()
	for i := range arr {
		for j := i + burst + 1; j < len(arr); j++ {
			window := arr[j].Sub(arr[i])
			if allowed := burst + int(rate*window.Seconds()) + 5; j-i+1 > allowed {
				t.Fatalf("%d requests arrived in %s", j-i+1, window)
			}
		}
	}

}

// Manifests and indexes over the size limit are refused without reading
// further; a manifest of 1,000 layers within the limit is read without
// downloading a layer.
func TestOversizedManifestsAndIndexes(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	p := faultproxy.New(t, reg.URL())
	idx, err := faultproxy.WideIndex(64)
	if err != nil {
		t.Fatal(err)
	}
	wide, err := p.ServeIndex("base/wide", "1", idx)
	if err != nil {
		t.Fatal(err)
	}
	img, err := faultproxy.ManyLayers(1000)
	if err != nil {
		t.Fatal(err)
	}
	tall, err := p.ServeImage("base/tall", "1", img)
	if err != nil {
		t.Fatal(err)
	}

	small := client(registry.Options{MaxManifestBytes: 8 << 10})
	for _, ref := range []string{p.Host + "/base/wide@" + wide, p.Host + "/base/tall@" + tall} {
		p.ResetCounts()
		d, _ := name.NewDigest(ref)
		_, err := small.Inspect(context.Background(), d, registry.Access{}, nil)
		if registry.KindOf(err) != registry.KindInvalid || err.Error() != "manifest larger than 8192 bytes" {
			t.Errorf("%s: err = %v, want the size limit", ref, err)
		}
		if registry.Retryable(err) {
			t.Errorf("%s: a size refusal is retryable", ref)
		}
		if n := p.RequestsTo("/v2/base/"); n != 1 {
			t.Errorf("%s: requests = %d, want 1", ref, n)
		}
	}

	p.ResetCounts()
	d, _ := name.NewDigest(p.Host + "/base/tall@" + tall)
	info, err := client(registry.Options{}).Inspect(context.Background(), d, registry.Access{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Platforms) != 1 {
		t.Errorf("platforms = %v", info.Platforms)
	}
	if n := p.RequestsTo("/v2/base/tall/blobs/"); n != 1 {
		t.Errorf("blob requests = %d, want 1 (the config)", n)
	}
}

// A registry whose Bearer challenge names a token realm on another host
// never gets the registry's credentials sent there: a realm on another
// address is refused before any request, and so is a realm under another
// name.
func TestTokenRealmOnAnotherHost(t *testing.T) {
	const user, pass = "reader", "s3cret-for-registry"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	for _, tc := range []struct {
		name  string
		realm func(token *faultproxy.Proxy) string
	}{
		{"another loopback port", func(token *faultproxy.Proxy) string { return token.URL() + "/token" }},
		{"another host name", func(token *faultproxy.Proxy) string {
			return "http://localhost:" + strings.Split(token.Host, ":")[1] + "/token"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			// The token server answers any request with a token.
			token := faultproxy.New(t, f.reg.URL())
			token.Add(faultproxy.Rule{Prefix: "/", Fault: faultproxy.Respond(http.StatusOK, "application/json", "", []byte(`{"token":"t0ken"}`))})
			f.proxy.Add(faultproxy.Rule{Prefix: "/v2/", Fault: faultproxy.BearerChallenge(tc.realm(token), "registry", "t0ken")})

			kc, err := registry.KeychainFromPullSecrets([]corev1.Secret{pullSecret(f.proxy.Host, user, pass)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = client(registry.Options{}).Head(context.Background(), f.tag, registry.Access{Keychain: kc})
			var re *registry.Error
			if !errors.As(err, &re) || re.Kind != registry.KindUnauthorized || !strings.Contains(err.Error(), "token realm refused") {
				t.Fatalf("err = %v, want the token realm refused", err)
			}
			if strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("message %q names a credential or an address", err)
			}
			if n := token.Authorizations()[basic]; n != 0 {
				t.Errorf("the token server received the registry's credentials %d times", n)
			}
			if n := token.Requests(); n != 0 {
				t.Errorf("the token server received %d requests", n)
			}
			// Everything went to the registry, under its own name.
			if n, all := f.proxy.RequestsFor(f.proxy.Host), f.proxy.Requests(); n == 0 || n != all {
				t.Errorf("%d of %d registry requests named the registry's host", n, all)
			}
		})
	}
}

func pullSecret(host, user, pass string) corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "pull", Namespace: "team"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{
			corev1.DockerConfigJsonKey: fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, auth),
		},
	}
}
