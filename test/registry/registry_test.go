package registrytest_test

import (
	"net/http"
	"strings"
	"testing"

	registrytest "github.com/plinth-dev/plinth/test/registry"
)

func get(t *testing.T, r *registrytest.Registry, method, path string, auth bool) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, r.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.SetBasicAuth("u", "p")
	}
	resp, err := (&http.Client{Transport: r.Transport()}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestCountsAndFaults(t *testing.T) {
	r := registrytest.New(t)
	if resp := get(t, r, http.MethodGet, "/v2/", false); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ = %d", resp.StatusCode)
	}
	get(t, r, http.MethodHead, "/v2/base/alpine/manifests/3.22", false)
	get(t, r, http.MethodGet, "/v2/base/alpine/manifests/3.22", false)
	get(t, r, http.MethodGet, "/v2/team/base/debian/manifests/12", false)
	get(t, r, http.MethodGet, "/v2/base/alpine/blobs/sha256:00", false)

	if got := r.Requests(); got != 5 {
		t.Errorf("Requests = %d, want 5", got)
	}
	if got := r.ManifestRequests("base/alpine"); got != 2 {
		t.Errorf("ManifestRequests(base/alpine) = %d, want 2", got)
	}
	if got := r.ManifestRequests("team/base/debian"); got != 1 {
		t.Errorf("ManifestRequests(team/base/debian) = %d, want 1", got)
	}
	if got := r.TotalManifestRequests(); got != 3 {
		t.Errorf("TotalManifestRequests = %d, want 3", got)
	}
	r.ResetCounts()
	if r.Requests() != 0 || r.TotalManifestRequests() != 0 {
		t.Errorf("counts not reset")
	}

	r.FailWith("/v2/base/", http.StatusServiceUnavailable, 2)
	for i, want := range []int{503, 503, 404} {
		if got := get(t, r, http.MethodGet, "/v2/base/alpine/manifests/x", false).StatusCode; got != want {
			t.Errorf("request %d = %d, want %d", i, got, want)
		}
	}
	r.FailWith("/v2/", http.StatusInternalServerError, -1)
	for range 3 {
		if got := get(t, r, http.MethodGet, "/v2/", false).StatusCode; got != 500 {
			t.Errorf("GET /v2/ with fault = %d, want 500", got)
		}
	}
	r.ClearFaults()
	if got := get(t, r, http.MethodGet, "/v2/", false).StatusCode; got != 200 {
		t.Errorf("GET /v2/ after ClearFaults = %d, want 200", got)
	}
}

func TestBasicAuthAndTLS(t *testing.T) {
	r := registrytest.New(t, registrytest.WithBasicAuth("u", "p"), registrytest.WithTLS())
	if !strings.HasPrefix(r.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL = %s", r.URL())
	}
	resp := get(t, r, http.MethodGet, "/v2/", false)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("without credentials: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := get(t, r, http.MethodGet, "/v2/", true); resp.StatusCode != http.StatusOK {
		t.Errorf("with credentials: %d", resp.StatusCode)
	}
	if r.CertPool() == nil {
		t.Error("CertPool is nil for a TLS registry")
	}
}

func TestNewServerRefusesNonLoopback(t *testing.T) {
	if r, err := registrytest.NewServer("0.0.0.0:0"); err == nil {
		r.Close()
		t.Fatal("NewServer accepted a non-loopback address")
	}
	r, err := registrytest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close()
}
