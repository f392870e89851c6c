package registry_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

func TestHeadTrustsTheEntrysCABundle(t *testing.T) {
	reg := registrytest.New(t, registrytest.WithTLS())
	want := pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{}, remote.WithTransport(reg.Transport()))
	ref := mustRef(t, reg.Host+"/base/alpine:3.22")
	c := registry.New(fastOptions(registry.Options{}))

	_, err := c.Head(context.Background(), ref, registry.Access{})
	if got := registry.KindOf(err); got != registry.KindTLS {
		t.Fatalf("without the CA bundle: kind = %q (%v), want %q", got, err, registry.KindTLS)
	}
	if want := "TLS verification failed: certificate signed by unknown authority"; err.Error() != want {
		t.Errorf("without the CA bundle: message = %q, want %q", err.Error(), want)
	}
	if registry.Retryable(err) {
		t.Errorf("Retryable(%v) = true, want false", err)
	}

	desc, err := c.Head(context.Background(), ref, registry.Access{CAPEM: reg.CAPEM()})
	if err != nil {
		t.Fatalf("with the CA bundle: %v", err)
	}
	if desc.Digest.String() != want {
		t.Fatalf("digest = %s, want %s", desc.Digest, want)
	}

	// The bundle trusts this registry for this entry only.
	if _, err := c.Head(context.Background(), ref, registry.Access{}); registry.KindOf(err) != registry.KindTLS {
		t.Errorf("without the CA bundle after a success: got %v, want a TLS error", err)
	}
}

func TestInspectTrustsTheEntrysCABundle(t *testing.T) {
	reg := registrytest.New(t, registrytest.WithTLS())
	d := pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{}, remote.WithTransport(reg.Transport()))
	ref := mustDigest(t, reg.Host+"/base/alpine@"+d)
	c := registry.New(fastOptions(registry.Options{}))

	if _, err := c.Inspect(context.Background(), ref, registry.Access{}, nil); registry.KindOf(err) != registry.KindTLS {
		t.Errorf("without the CA bundle: got %v, want a TLS error", err)
	}
	info, err := c.Inspect(context.Background(), ref, registry.Access{CAPEM: reg.CAPEM()}, nil)
	if err != nil {
		t.Fatalf("with the CA bundle: %v", err)
	}
	if info.Digest != d {
		t.Errorf("digest = %s, want %s", info.Digest, d)
	}
}

func TestInvalidCABundle(t *testing.T) {
	reg := registrytest.New(t)
	c := registry.New(fastOptions(registry.Options{}))
	bundles := map[string][]byte{
		"not PEM":         []byte("not a certificate"),
		"PEM, not a cert": []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"),
	}
	for name, pem := range bundles {
		t.Run(name, func(t *testing.T) {
			a := registry.Access{CAPEM: pem}
			_, err := c.Head(context.Background(), mustRef(t, reg.Host+"/base/alpine:3.22"), a)
			if got := registry.KindOf(err); got != registry.KindTLS {
				t.Fatalf("Head: kind = %q (%v), want %q", got, err, registry.KindTLS)
			}
			if want := "certificate bundle holds no PEM certificate"; err.Error() != want {
				t.Errorf("Head: message = %q, want %q", err.Error(), want)
			}
			if _, err := c.Transport(a); registry.KindOf(err) != registry.KindTLS {
				t.Errorf("Transport: got %v, want a TLS error", err)
			}
			if reg.Requests() != 0 {
				t.Errorf("registry received %d requests, want none", reg.Requests())
			}
		})
	}
}

// TestTransportsShareRateLimits checks that the per-host limit holds across
// transports made for different CA bundles.
func TestTransportsShareRateLimits(t *testing.T) {
	reg := registrytest.New(t, registrytest.WithTLS())
	c := registry.New(fastOptions(registry.Options{RateLimit: 0.01, Burst: 1, Transport: reg.Transport()}))
	plain, err := c.Transport(registry.Access{})
	if err != nil {
		t.Fatal(err)
	}
	withCA, err := c.Transport(registry.Access{CAPEM: reg.CAPEM()})
	if err != nil {
		t.Fatal(err)
	}
	get := func(rt http.RoundTripper) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.URL()+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := get(withCA); err != nil {
		t.Fatalf("first request: %v", err)
	}
	// The bucket is empty and refills in 100s: the limiter refuses at once
	// rather than wait past the deadline.
	if err := get(plain); err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Errorf("second request through another transport: err = %v, want a rate limiter refusal", err)
	}
	if got := reg.Requests(); got != 1 {
		t.Errorf("registry received %d requests, want 1", got)
	}
}

// loopbackDialer returns a transport that connects every host name to addr,
// a loopback address, so that names that are not loopback-looking can be
// tested without leaving the machine.
func loopbackDialer(addr string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	var d net.Dialer
	t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return t
}

func TestInsecureAllowsPlainHTTP(t *testing.T) {
	reg := registrytest.New(t)
	want := pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{})
	// go-containerregistry allows plain HTTP to loopback addresses anyway, so
	// the registry is reached under a name that is not loopback-looking.
	const image = "registry.plain.test:5000/base/alpine:3.22"
	c := registry.New(fastOptions(registry.Options{Transport: loopbackDialer(reg.Host)}))

	_, err := c.Head(context.Background(), mustRef(t, image), registry.Access{})
	if got := registry.KindOf(err); got != registry.KindTLS {
		t.Fatalf("without Insecure: kind = %q (%v), want %q", got, err, registry.KindTLS)
	}
	if strings.Contains(err.Error(), "registry.plain.test") {
		t.Errorf("message %q names the registry", err.Error())
	}

	// Insecure works with a reference parsed without name.Insecure ...
	desc, err := c.Head(context.Background(), mustRef(t, image), registry.Access{Insecure: true})
	if err != nil {
		t.Fatalf("with Insecure: %v", err)
	}
	if desc.Digest.String() != want {
		t.Fatalf("digest = %s, want %s", desc.Digest, want)
	}
	info, err := c.Inspect(context.Background(), mustDigest(t, "registry.plain.test:5000/base/alpine@"+want), registry.Access{Insecure: true}, nil)
	if err != nil {
		t.Fatalf("Inspect with Insecure: %v", err)
	}
	if info.Digest != want {
		t.Fatalf("Inspect digest = %s, want %s", info.Digest, want)
	}

	// ... and the secure puller was not reused for it, nor the insecure one
	// for a secure request afterwards.
	if _, err := c.Head(context.Background(), mustRef(t, image), registry.Access{}); registry.KindOf(err) != registry.KindTLS {
		t.Errorf("without Insecure after a success: got %v, want a TLS error", err)
	}
}

func TestAccessReference(t *testing.T) {
	tests := []struct {
		image      string
		insecure   bool
		wantScheme string
	}{
		{"registry.example.com/base/alpine:3.22", false, "https"},
		{"registry.example.com/base/alpine:3.22", true, "http"},
		{"registry.example.com/base/alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true, "http"},
		// go-containerregistry allows plain HTTP to loopback whatever Insecure says.
		{"127.0.0.1:5000/base/alpine:3.22", false, "http"},
		{"localhost:5000/base/alpine:3.22", false, "http"},
	}
	for _, tt := range tests {
		ref, err := registry.Access{Insecure: tt.insecure}.Reference(tt.image)
		if err != nil {
			t.Fatalf("Reference(%q): %v", tt.image, err)
		}
		if got := ref.Context().Registry.Scheme(); got != tt.wantScheme {
			t.Errorf("Reference(%q) with Insecure=%v: scheme %q, want %q", tt.image, tt.insecure, got, tt.wantScheme)
		}
		if got := ref.Context().Digest("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").Context().Registry.Scheme(); got != tt.wantScheme {
			t.Errorf("digest derived from Reference(%q): scheme %q, want %q", tt.image, got, tt.wantScheme)
		}
	}
	if _, err := (registry.Access{Insecure: true}).Reference("Not A Reference"); err == nil {
		t.Error("Reference of an invalid string: no error")
	}
}
