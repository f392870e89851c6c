package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// fastOptions keeps retries quick in tests.
func fastOptions(o registry.Options) registry.Options {
	if o.RetryBackoff == 0 {
		o.RetryBackoff = time.Millisecond
	}
	return o
}

func pushImage(t *testing.T, ref string, o imagetest.ImageOptions, opts ...remote.Option) string {
	t.Helper()
	img, err := imagetest.Image(o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := imagetest.PushImage(context.Background(), ref, img, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dockerConfigSecret(name, host, user, pass string) corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{
			corev1.DockerConfigJsonKey: fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, auth),
		},
	}
}

func TestHeadResolvesTagWithOneRequestWhenWarm(t *testing.T) {
	reg := registrytest.New(t)
	want := pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{Files: map[string]string{"/etc/motd": "hi"}})
	c := registry.New(fastOptions(registry.Options{UserAgent: "plinth-test"}))
	ref := mustRef(t, reg.Host+"/base/alpine:3.22")
	ctx := context.Background()

	desc, err := c.Head(ctx, ref, registry.Access{})
	if err != nil {
		t.Fatalf("first Head: %v", err)
	}
	if desc.Digest.String() != want {
		t.Fatalf("digest = %s, want %s", desc.Digest, want)
	}

	reg.ResetCounts()
	desc, err = c.Head(ctx, ref, registry.Access{})
	if err != nil {
		t.Fatalf("second Head: %v", err)
	}
	if desc.Digest.String() != want {
		t.Fatalf("digest = %s, want %s", desc.Digest, want)
	}
	if got := reg.ManifestRequests("base/alpine"); got != 1 {
		t.Errorf("manifest requests on warm Head = %d, want 1", got)
	}
	if got := reg.Requests(); got != 1 {
		t.Errorf("total requests on warm Head = %d, want 1 (no /v2/ ping)", got)
	}
}

func TestHeadWithBasicAuth(t *testing.T) {
	reg := registrytest.New(t, registrytest.WithBasicAuth("plinth", "s3cr3t"))
	push := remote.WithAuth(&authn.Basic{Username: "plinth", Password: "s3cr3t"})
	want := pushImage(t, reg.Host+"/base/debian:12", imagetest.ImageOptions{}, push)
	ref := mustRef(t, reg.Host+"/base/debian:12")

	good, err := registry.KeychainFromPullSecrets([]corev1.Secret{dockerConfigSecret("pull", reg.Host, "plinth", "s3cr3t")})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := registry.KeychainFromPullSecrets([]corev1.Secret{dockerConfigSecret("pull", reg.Host, "plinth", "wrong")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := registry.KeychainFromPullSecrets([]corev1.Secret{dockerConfigSecret("pull", "registry.example.com", "plinth", "s3cr3t")})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		kc       authn.Keychain
		wantKind registry.ErrorKind
		wantMsg  string
	}{
		{name: "matching secret", kc: good},
		{name: "anonymous", kc: nil, wantKind: registry.KindUnauthorized, wantMsg: "registry requires credentials (HTTP 401)"},
		{name: "secret for another registry", kc: other, wantKind: registry.KindUnauthorized, wantMsg: "registry requires credentials (HTTP 401)"},
		{name: "wrong password", kc: bad, wantKind: registry.KindUnauthorized, wantMsg: "registry refused the credentials (HTTP 401)"},
	}
	c := registry.New(fastOptions(registry.Options{}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc, err := c.Head(context.Background(), ref, registry.Access{Keychain: tt.kc})
			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("Head: %v", err)
				}
				if desc.Digest.String() != want {
					t.Fatalf("digest = %s, want %s", desc.Digest, want)
				}
				return
			}
			if got := registry.KindOf(err); got != tt.wantKind {
				t.Fatalf("kind = %q (%v), want %q", got, err, tt.wantKind)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("message = %q, want %q", err.Error(), tt.wantMsg)
			}
		})
	}
}

func TestHeadOverTLS(t *testing.T) {
	reg := registrytest.New(t, registrytest.WithTLS())
	want := pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{}, remote.WithTransport(reg.Transport()))
	ref := mustRef(t, reg.Host+"/base/alpine:3.22")

	c := registry.New(fastOptions(registry.Options{Transport: reg.Transport()}))
	desc, err := c.Head(context.Background(), ref, registry.Access{})
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if desc.Digest.String() != want {
		t.Fatalf("digest = %s, want %s", desc.Digest, want)
	}
}

func TestHeadFailures(t *testing.T) {
	const repo = "base/alpine"
	manifests := "/v2/" + repo + "/manifests/"
	tests := []struct {
		name         string
		ref          string
		fault        func(r *registrytest.Registry)
		retries      int
		wantKind     registry.ErrorKind
		wantMsg      string
		wantAttempts int
	}{
		{
			name: "unknown tag", ref: repo + ":missing", retries: 2,
			wantKind: registry.KindNotFound, wantMsg: "manifest unknown (HTTP 404)", wantAttempts: 1,
		},
		{
			name: "unknown repository", ref: "base/nothing:1", retries: 2,
			wantKind: registry.KindNotFound, wantMsg: "manifest unknown (HTTP 404)",
		},
		{
			name: "server error until cleared", ref: repo + ":3.22", retries: 2,
			fault:    func(r *registrytest.Registry) { r.FailWith(manifests, http.StatusInternalServerError, -1) },
			wantKind: registry.KindUnavailable, wantMsg: "registry unavailable (HTTP 500)", wantAttempts: 3,
		},
		{
			name: "no retries", ref: repo + ":3.22", retries: -1,
			fault:    func(r *registrytest.Registry) { r.FailWith(manifests, http.StatusBadGateway, -1) },
			wantKind: registry.KindUnavailable, wantMsg: "registry unavailable (HTTP 502)", wantAttempts: 1,
		},
		{
			name: "rate limited", ref: repo + ":3.22", retries: 1,
			fault:    func(r *registrytest.Registry) { r.FailWith(manifests, http.StatusTooManyRequests, -1) },
			wantKind: registry.KindUnavailable, wantMsg: "registry rate limit exceeded (HTTP 429)", wantAttempts: 2,
		},
		{
			name: "forbidden", ref: repo + ":3.22", retries: 2,
			fault:    func(r *registrytest.Registry) { r.FailWith(manifests, http.StatusForbidden, -1) },
			wantKind: registry.KindUnauthorized, wantMsg: "registry denied access (HTTP 403)", wantAttempts: 1,
		},
		{
			name: "transient error then success", ref: repo + ":3.22", retries: 2,
			fault:        func(r *registrytest.Registry) { r.FailWith(manifests, http.StatusServiceUnavailable, 2) },
			wantAttempts: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.New(t)
			pushImage(t, reg.Host+"/"+repo+":3.22", imagetest.ImageOptions{})
			reg.ResetCounts()
			if tt.fault != nil {
				tt.fault(reg)
			}
			c := registry.New(fastOptions(registry.Options{Retries: tt.retries}))
			_, err := c.Head(context.Background(), mustRef(t, reg.Host+"/"+tt.ref), registry.Access{})
			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("Head: %v", err)
				}
			} else {
				if got := registry.KindOf(err); got != tt.wantKind {
					t.Fatalf("kind = %q (%v), want %q", got, err, tt.wantKind)
				}
				if err.Error() != tt.wantMsg {
					t.Errorf("message = %q, want %q", err.Error(), tt.wantMsg)
				}
			}
			if tt.wantAttempts > 0 {
				if got := reg.ManifestRequests(repo); got != tt.wantAttempts {
					t.Errorf("manifest requests = %d, want %d", got, tt.wantAttempts)
				}
			}
		})
	}
}

func TestHeadHonoursRetryAfter(t *testing.T) {
	reg := registrytest.New(t)
	want := pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{})
	reg.FailWithRetryAfter("/v2/base/alpine/manifests/", http.StatusServiceUnavailable, 1, time.Second)

	c := registry.New(fastOptions(registry.Options{Retries: 2}))
	start := time.Now()
	desc, err := c.Head(context.Background(), mustRef(t, reg.Host+"/base/alpine:3.22"), registry.Access{})
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if desc.Digest.String() != want {
		t.Fatalf("digest = %s, want %s", desc.Digest, want)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("retried after %v, want about the 1s the registry asked for", waited)
	}
}

func TestHeadRetryAfterIsCapped(t *testing.T) {
	reg := registrytest.New(t)
	pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{})
	reg.FailWithRetryAfter("/v2/base/alpine/manifests/", http.StatusTooManyRequests, 1, time.Hour)

	c := registry.New(fastOptions(registry.Options{Retries: 1, MaxRetryAfter: 50 * time.Millisecond}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Head(ctx, mustRef(t, reg.Host+"/base/alpine:3.22"), registry.Access{}); err != nil {
		t.Fatalf("Head: %v", err)
	}
}

func TestUnreachableRegistry(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()

	c := registry.New(fastOptions(registry.Options{Retries: 1}))
	_, err := c.Head(context.Background(), mustRef(t, host+"/base/alpine:3.22"), registry.Access{})
	if got := registry.KindOf(err); got != registry.KindUnavailable {
		t.Fatalf("kind = %q (%v), want %q", got, err, registry.KindUnavailable)
	}
	if strings.Contains(err.Error(), host) {
		t.Errorf("message %q contains the registry address", err.Error())
	}
	var re *registry.Error
	if !errors.As(err, &re) || re.Unwrap() == nil {
		t.Errorf("error does not wrap its cause: %#v", err)
	}
}

// TestRedirectDoesNotCarryCredentials serves a manifest HEAD through a
// redirect to another host and checks that the credentials (the password,
// or the token it was exchanged for) stay behind.
func TestRedirectDoesNotCarryCredentials(t *testing.T) {
	for _, scheme := range []string{"Basic", "Bearer"} {
		t.Run(scheme, func(t *testing.T) { testRedirectDoesNotCarryCredentials(t, scheme) })
	}
}

func testRedirectDoesNotCarryCredentials(t *testing.T, scheme string) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const token = "t0ken-for-origin"
	var mu sync.Mutex
	var targetAuth, originAuth []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		targetAuth = append(targetAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", digest)
		w.Header().Set("Content-Length", "42")
	}))
	defer target.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authorized := false
		switch scheme {
		case "Basic":
			_, _, authorized = r.BasicAuth()
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		case "Bearer":
			if r.URL.Path == "/token" {
				if u, p, ok := r.BasicAuth(); !ok || u != "plinth" || p != "s3cr3t" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				_, _ = fmt.Fprintf(w, `{"token":%q}`, token)
				return
			}
			authorized = r.Header.Get("Authorization") == "Bearer "+token
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test"`)
		}
		if !authorized {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		originAuth = append(originAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		if strings.Contains(r.URL.Path, "/manifests/") {
			http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}
	}))
	defer origin.Close()

	host := strings.TrimPrefix(origin.URL, "http://")
	kc, err := registry.KeychainFromPullSecrets([]corev1.Secret{dockerConfigSecret("pull", host, "plinth", "s3cr3t")})
	if err != nil {
		t.Fatal(err)
	}
	c := registry.New(fastOptions(registry.Options{}))
	desc, err := c.Head(context.Background(), mustRef(t, host+"/base/alpine:3.22"), registry.Access{Keychain: kc})
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if desc.Digest.String() != digest {
		t.Fatalf("digest = %s, want %s", desc.Digest, digest)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(originAuth) == 0 || !strings.HasPrefix(originAuth[0], scheme+" ") {
		t.Fatalf("origin registry never received %s credentials: %q", scheme, originAuth)
	}
	if len(targetAuth) != 1 || targetAuth[0] != "" {
		t.Errorf("redirect target received Authorization headers %q, want one request without", targetAuth)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustDigest(t *testing.T, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
