package registry_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// A tag seen for the first time costs one manifest GET and one config GET:
// the manifest read to resolve the tag is the one inspected.
func TestResolveReadsTheManifestOnce(t *testing.T) {
	reg := registrytest.New(t)
	created := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	want := pushImage(t, reg.Host+"/base/app:1", imagetest.ImageOptions{Architecture: "arm64", Created: created,
		Annotations: map[string]string{registry.AnnotationBaseDigest: upstreamDigest}})
	c := registry.New(fastOptions(registry.Options{}))
	ctx := context.Background()

	reg.ResetCounts()
	info, err := c.Resolve(ctx, mustRef(t, reg.Host+"/base/app:1"), registry.Access{}, nil)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if info.Digest != want || !slices.Equal(info.Platforms, []string{"linux/arm64"}) || !info.Created.Equal(created) || info.BaseDigest != upstreamDigest {
		t.Errorf("Resolve = %+v, want digest %s, linux/arm64, created %s, base %s", *info, want, created, upstreamDigest)
	}
	if got := reg.ManifestRequests("base/app"); got != 1 {
		t.Errorf("manifest requests = %d, want 1", got)
	}
	if got := reg.BlobRequests(); got != 1 {
		t.Errorf("blob requests = %d, want 1 (the config)", got)
	}

	// Another tag of the same content: the config is known by its digest.
	pushImage(t, reg.Host+"/base/other:1", imagetest.ImageOptions{Architecture: "arm64", Created: created,
		Annotations: map[string]string{registry.AnnotationBaseDigest: upstreamDigest}})
	reg.ResetCounts()
	again, err := c.Resolve(ctx, mustRef(t, reg.Host+"/base/other:1"), registry.Access{}, []string{"linux/arm64"})
	if err != nil {
		t.Fatalf("Resolve of another tag: %v", err)
	}
	if again.Digest != want || !slices.Equal(again.Platforms, info.Platforms) {
		t.Errorf("Resolve of another tag = %+v, want %+v", *again, *info)
	}
	if got, blobs := reg.Requests(), reg.BlobRequests(); got != 1 || blobs != 0 {
		t.Errorf("requests = %d (blobs %d), want 1 manifest GET", got, blobs)
	}

	// Inspecting a single-platform digest already read costs nothing.
	reg.ResetCounts()
	inspected, err := c.Inspect(ctx, mustDigest(t, reg.Host+"/base/app@"+want), registry.Access{}, nil)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if inspected.Digest != want || !inspected.Created.Equal(created) || inspected.BaseDigest != upstreamDigest {
		t.Errorf("Inspect = %+v, want %+v", *inspected, *info)
	}
	if got := reg.Requests(); got != 0 {
		t.Errorf("requests = %d, want 0", got)
	}
	_, err = c.Inspect(ctx, mustDigest(t, reg.Host+"/base/app@"+want), registry.Access{}, []string{"linux/amd64"})
	if got := registry.KindOf(err); got != registry.KindNotFound {
		t.Errorf("a filter not matching the known image: kind = %q (%v), want %q", got, err, registry.KindNotFound)
	}
}

// Resolving an index tag gives what inspecting its digest gives, with one
// GET of the index and one of each evaluated platform's manifest and config.
func TestResolveIndexMatchesInspect(t *testing.T) {
	reg := registrytest.New(t)
	d := pushIndex(t, reg)
	ctx := context.Background()

	reg.ResetCounts()
	c := registry.New(fastOptions(registry.Options{}))
	got, err := c.Resolve(ctx, mustRef(t, reg.Host+"/base/alpine:3.22"), registry.Access{}, []string{"linux/arm64"})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if m, b := reg.ManifestRequests("base/alpine"), reg.BlobRequests(); m != 2 || b != 1 {
		t.Errorf("requests: %d manifests, %d blobs; want 2 (index, arm64 image) and 1 (its config)", m, b)
	}
	want, err := registry.New(fastOptions(registry.Options{})).Inspect(ctx, d, registry.Access{}, []string{"linux/arm64"})
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if got.Digest != d.DigestStr() || got.Digest != want.Digest || got.MediaType != want.MediaType ||
		!slices.Equal(got.Platforms, want.Platforms) || !got.Created.Equal(want.Created) || got.BaseDigest != want.BaseDigest {
		t.Errorf("Resolve = %+v, Inspect = %+v", *got, *want)
	}

	// A second look at the index reads the index only.
	reg.ResetCounts()
	if _, err := c.Inspect(ctx, d, registry.Access{}, []string{"linux/arm64"}); err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if got := reg.Requests(); got != 1 {
		t.Errorf("requests = %d, want 1 (the index)", got)
	}
}

// Many repositories of one registry, read again and again with the same
// credentials, cost one /v2/ ping per credential: anonymous or basic.
func TestOnePingPerRegistryAndCredential(t *testing.T) {
	const repos, rounds = 20, 3
	for _, tt := range []struct {
		name   string
		opts   []registrytest.Option
		push   []remote.Option
		access func(host string) registry.Access
	}{
		{name: "anonymous", access: func(string) registry.Access { return registry.Access{} }},
		{
			name: "basic",
			opts: []registrytest.Option{registrytest.WithBasicAuth("plinth", "s3cr3t")},
			push: []remote.Option{remote.WithAuth(&authn.Basic{Username: "plinth", Password: "s3cr3t"})},
			access: func(host string) registry.Access {
				kc, err := registry.KeychainFromPullSecrets([]corev1.Secret{dockerConfigSecret("pull", host, "plinth", "s3cr3t")})
				if err != nil {
					t.Fatal(err)
				}
				return registry.Access{Keychain: kc}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.New(t, tt.opts...)
			for i := range repos {
				pushImage(t, fmt.Sprintf("%s/base/image-%02d:1", reg.Host, i), imagetest.ImageOptions{
					Files: map[string]string{"etc/motd": fmt.Sprint(i)}}, tt.push...)
			}
			c := registry.New(fastOptions(registry.Options{RateLimit: 1000, Burst: 1000}))
			a := tt.access(reg.Host)
			ctx := context.Background()
			reg.ResetCounts()
			for round := range rounds {
				for i := range repos {
					ref := mustRef(t, fmt.Sprintf("%s/base/image-%02d:1", reg.Host, i))
					var err error
					if round == 0 {
						_, err = c.Resolve(ctx, ref, a, nil)
					} else {
						_, err = c.Head(ctx, ref, a)
					}
					if err != nil {
						t.Fatalf("round %d, image %d: %v", round, i, err)
					}
				}
			}
			if got := reg.Pings(); got != 1 {
				t.Errorf("/v2/ pings = %d for %d repositories and %d rounds, want 1", got, repos, rounds)
			}
			if got, want := reg.TotalManifestRequests(), repos*rounds; got != want {
				t.Errorf("manifest requests = %d, want %d", got, want)
			}
		})
	}
}
