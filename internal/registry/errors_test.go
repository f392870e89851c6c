package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

const (
	classifyUser = "plinth"
	classifyPass = "s3cr3t-pw"
)

// loopbackOnly is a base transport that dials loopback addresses only; any
// other address is recorded and refused without a packet sent.
type loopbackOnly struct {
	mu      sync.Mutex
	refused []string
}

func (l *loopbackOnly) transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	var d net.Dialer
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			l.mu.Lock()
			l.refused = append(l.refused, addr)
			l.mu.Unlock()
			return nil, fmt.Errorf("test refuses to dial %s", addr)
		}
		return d.DialContext(ctx, network, addr)
	}
	return t
}

func (l *loopbackOnly) refusedDials() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.refused...)
}

// challenge answers every registry request but /token with a 401 carrying
// the WWW-Authenticate value made by header from the request's host, and
// /token with token (or a redirect to redirect). It records the
// Authorization headers it receives.
type challenge struct {
	header   func(host string) string
	token    string
	redirect string

	mu    sync.Mutex
	auths []string
}

func (c *challenge) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		if a := r.Header.Get("Authorization"); a != "" {
			c.auths = append(c.auths, r.URL.Path+" "+a)
		}
		c.mu.Unlock()
		if r.URL.Path == "/token" {
			if c.redirect != "" {
				http.Redirect(w, r, c.redirect, http.StatusFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(c.token))
			return
		}
		w.Header().Set("WWW-Authenticate", c.header(r.Host))
		w.WriteHeader(http.StatusUnauthorized)
	})
}

func (c *challenge) authorizations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.auths...)
}

func fixed(h string) func(string) string { return func(string) string { return h } }

func TestClassifiedFailures(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		tls    []registrytest.Option // TLS options; trusted through Access.CAPEM
		noCA   bool                  // do not trust the registry's CA
		chal   *challenge
		kind   registry.ErrorKind
		msg    string
		noAuth bool // the registry must receive no credentials
	}{
		{
			name: "unknown certificate authority",
			tls:  []registrytest.Option{registrytest.WithTLS()}, noCA: true,
			kind: registry.KindTLS, msg: "TLS verification failed: certificate signed by unknown authority",
		},
		{
			name: "certificate for another host name",
			tls:  []registrytest.Option{registrytest.WithCertificate([]string{"registry.example.com"}, now.Add(-time.Hour), now.Add(time.Hour))},
			kind: registry.KindTLS, msg: "TLS verification failed: certificate is not valid for the registry's host name",
		},
		{
			name: "expired certificate",
			tls:  []registrytest.Option{registrytest.WithCertificate([]string{"127.0.0.1"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))},
			kind: registry.KindTLS, msg: "TLS verification failed: certificate has expired or is not yet valid",
		},
		{
			name: "token realm on a private address",
			chal: &challenge{header: fixed(`Bearer realm="http://10.0.0.1/token",service="registry"`)},
			kind: registry.KindUnauthorized, msg: "registry authentication failed: token realm refused: it is a private or link-local address",
			noAuth: true,
		},
		{
			name: "plain HTTP token realm for a TLS registry",
			tls:  []registrytest.Option{registrytest.WithTLS()},
			chal: &challenge{header: fixed(`Bearer realm="http://auth.example.com/token",service="registry"`)},
			kind: registry.KindUnauthorized, msg: "registry authentication failed: token realm refused: plain HTTP realm for a registry reached over HTTPS",
			noAuth: true,
		},
		{
			name: "token realm with another URL scheme",
			chal: &challenge{header: fixed(`Bearer realm="ftp://auth.example.com/token",service="registry"`)},
			kind: registry.KindUnauthorized, msg: "registry authentication failed: token realm refused: unsupported URL scheme",
			noAuth: true,
		},
		{
			name: "unparsable token realm",
			chal: &challenge{header: fixed(`Bearer realm="http://auth.example.com/%zz",service="registry"`)},
			kind: registry.KindUnauthorized, msg: "registry authentication failed: malformed token realm",
			noAuth: true,
		},
		{
			name: "bearer challenge without realm",
			chal: &challenge{header: fixed(`Bearer service="registry",scope="repository:base/alpine:pull"`)},
			kind: registry.KindUnauthorized, msg: "registry authentication failed: malformed WWW-Authenticate challenge: missing realm",
			noAuth: true,
		},
		{
			name: "Negotiate",
			chal: &challenge{header: fixed(`Negotiate`)},
			kind: registry.KindUnauthorized, msg: `registry authentication failed: unsupported auth scheme "Negotiate"`,
			noAuth: true,
		},
		{
			name: "malformed challenge",
			chal: &challenge{header: fixed(`"realm=http://127.0.0.1/token`)},
			kind: registry.KindUnauthorized, msg: "registry authentication failed: malformed WWW-Authenticate challenge",
			noAuth: true,
		},
		{
			name: "token server redirects to a private address",
			chal: &challenge{
				header:   func(host string) string { return `Bearer realm="http://` + host + `/token",service="registry"` },
				redirect: "http://10.0.0.1/token",
			},
			kind: registry.KindUnauthorized, msg: "registry authentication failed: token server redirect refused",
		},
		{
			name: "token server answers without a token",
			chal: &challenge{
				header: func(host string) string { return `Bearer realm="http://` + host + `/token",service="registry"` },
				token:  `{"note":"http://127.0.0.1/ s3cr3t-pw"}`,
			},
			kind: registry.KindUnauthorized, msg: "registry authentication failed: no token in the token server's response",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]registrytest.Option(nil), tt.tls...)
			if tt.chal != nil {
				opts = append(opts, registrytest.WithMiddleware(tt.chal.middleware))
			}
			reg := registrytest.New(t, opts...)
			base := &loopbackOnly{}
			c := registry.New(fastOptions(registry.Options{Transport: base.transport()}))
			kc, err := registry.KeychainFromPullSecrets([]corev1.Secret{dockerConfigSecret("pull", reg.Host, classifyUser, classifyPass)})
			if err != nil {
				t.Fatal(err)
			}
			a := registry.Access{Keychain: kc}
			if len(tt.tls) > 0 && !tt.noCA {
				a.CAPEM = reg.CAPEM()
			}
			ref := mustRef(t, reg.Host+"/base/alpine:3.22")

			var msgs []string
			for range 2 {
				_, err := c.Head(context.Background(), ref, a)
				if got := registry.KindOf(err); got != tt.kind {
					t.Fatalf("kind = %q (%v), want %q", got, err, tt.kind)
				}
				if registry.Retryable(err) {
					t.Errorf("Retryable(%v) = true, want false", err)
				}
				var re *registry.Error
				if !errors.As(err, &re) || re.Unwrap() == nil {
					t.Errorf("error does not keep its cause: %#v", err)
				}
				msgs = append(msgs, err.Error())
			}
			if msgs[0] != tt.msg {
				t.Errorf("message = %q, want %q", msgs[0], tt.msg)
			}
			if msgs[1] != msgs[0] {
				t.Errorf("message changed between calls: %q, then %q", msgs[0], msgs[1])
			}
			assertClean(t, msgs[0], reg.Host)

			if got := base.refusedDials(); len(got) > 0 {
				t.Errorf("the client tried to reach %q", got)
			}
			if tt.noAuth && tt.chal != nil {
				if got := tt.chal.authorizations(); len(got) > 0 {
					t.Errorf("registry received credentials: %q", got)
				}
			}
		})
	}
}

// assertClean fails when msg holds a URL, an address or a credential.
func assertClean(t *testing.T, msg, host string) {
	t.Helper()
	basic := base64.StdEncoding.EncodeToString([]byte(classifyUser + ":" + classifyPass))
	for _, bad := range []string{"http://", "https://", "127.0.0.1", "10.0.0.1", host, classifyPass, basic} {
		if strings.Contains(msg, bad) {
			t.Errorf("message %q contains %q", msg, bad)
		}
	}
}

func TestTokenRealmOnOtherLoopbackPortIsRefused(t *testing.T) {
	// go-containerregistry allows a token realm on a private or loopback
	// address only when it is the registry's own host and port.
	token := registrytest.New(t)
	chal := &challenge{header: fixed(`Bearer realm="http://` + token.Host + `/token",service="registry"`)}
	reg := registrytest.New(t, registrytest.WithMiddleware(chal.middleware))
	kc, err := registry.KeychainFromPullSecrets([]corev1.Secret{dockerConfigSecret("pull", reg.Host, classifyUser, classifyPass)})
	if err != nil {
		t.Fatal(err)
	}
	c := registry.New(fastOptions(registry.Options{}))
	_, err = c.Head(context.Background(), mustRef(t, reg.Host+"/base/alpine:3.22"), registry.Access{Keychain: kc})
	if want := "registry authentication failed: token realm refused: it is a private or link-local address"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if n := token.Requests(); n != 0 {
		t.Errorf("the token realm received %d requests, want none", n)
	}
}

func TestManifestSizeRefusalIsInvalid(t *testing.T) {
	reg := registrytest.New(t)
	pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{Files: map[string]string{"/etc/motd": "hi"}})
	c := registry.New(fastOptions(registry.Options{MaxManifestBytes: 64}))
	d, err := remote.Head(mustRef(t, reg.Host+"/base/alpine:3.22"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Inspect(context.Background(), mustDigest(t, reg.Host+"/base/alpine@"+d.Digest.String()), registry.Access{}, nil)
	if got := registry.KindOf(err); got != registry.KindInvalid {
		t.Fatalf("kind = %q (%v), want %q", got, err, registry.KindInvalid)
	}
	if want := "manifest larger than 64 bytes"; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
	if registry.Retryable(err) {
		t.Error("a manifest size refusal is retryable")
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("not classified"), false},
		{&registry.Error{Kind: registry.KindUnavailable}, true},
		{fmt.Errorf("wrapped: %w", &registry.Error{Kind: registry.KindUnavailable}), true},
		{&registry.Error{Kind: registry.KindUnauthorized}, false},
		{&registry.Error{Kind: registry.KindNotFound}, false},
		{&registry.Error{Kind: registry.KindInvalid}, false},
		{&registry.Error{Kind: registry.KindTLS}, false},
	}
	for _, tt := range tests {
		if got := registry.Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
