package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/plinth-dev/plinth/internal/registry"
)

// tagServer serves n tags in pages, with Link headers as distribution does;
// link rewrites the Link header of the first page when set.
func tagServer(t *testing.T, n int, link func(next string) string) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	var pings, pages atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			http.NotFound(w, r)
			return
		}
		pages.Add(1)
		start := 0
		if last := r.URL.Query().Get("last"); last != "" {
			fmt.Sscanf(last, "t%05d", &start)
			start++
		}
		size := 100
		end := min(start+size, n)
		var tags []string
		for i := start; i < end; i++ {
			tags = append(tags, fmt.Sprintf("t%05d", i))
		}
		if end < n {
			next := fmt.Sprintf("</v2/base/many/tags/list?n=%d&last=t%05d>; rel=\"next\"", size, end-1)
			if link != nil && start == 0 {
				next = link(next)
			}
			w.Header().Set("Link", next)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": "base/many", "tags": tags})
	}))
	t.Cleanup(srv.Close)
	return srv, &pings, &pages
}

func TestTagsFollowLinkHeadersWithACap(t *testing.T) {
	srv, pings, pages := tagServer(t, 1050, nil)
	c := registry.New(registry.Options{})
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/base/many", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	n, truncated, err := c.Tags(context.Background(), repo, registry.Access{Insecure: true}, 0, func(tag string) { got = append(got, tag) })
	if err != nil || n != 1050 || truncated || len(got) != 1050 || got[1049] != "t01049" {
		t.Fatalf("read %d tags (truncated %v, last %q): %v", n, truncated, got[len(got)-1], err)
	}
	if pages.Load() != 11 {
		t.Errorf("%d pages, want 11", pages.Load())
	}
	// A second listing does not ping the registry again.
	before := pings.Load()
	n, truncated, err = c.Tags(context.Background(), repo, registry.Access{Insecure: true}, 250, func(string) {})
	if err != nil || n != 250 || !truncated {
		t.Errorf("capped: %d tags, truncated %v, %v", n, truncated, err)
	}
	if pings.Load() != before {
		t.Errorf("pinged again: %d pings", pings.Load())
	}
}

func TestTagsRefuseANextPageOnAnotherHost(t *testing.T) {
	srv, _, _ := tagServer(t, 500, func(string) string { return "<http://elsewhere.example/v2/x/tags/list?n=100>; rel=\"next\"" })
	c := registry.New(registry.Options{})
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/base/many", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Tags(context.Background(), repo, registry.Access{Insecure: true}, 0, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "another host") {
		t.Errorf("got %v", err)
	}
}
