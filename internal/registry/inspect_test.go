package registry_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

const upstreamDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

var (
	amd64Created = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	arm64Created = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	armCreated   = time.Date(2025, 6, 3, 8, 0, 0, 0, time.UTC)
)

// pushIndex pushes a three-platform index with BuildKit-style attestations
// and returns its digest reference.
func pushIndex(t *testing.T, reg *registrytest.Registry) name.Digest {
	t.Helper()
	var imgs []v1.Image
	for _, o := range []imagetest.ImageOptions{
		{Architecture: "amd64", Created: amd64Created, Annotations: map[string]string{
			registry.AnnotationBaseDigest: upstreamDigest,
			registry.AnnotationBaseName:   "docker.io/library/alpine:3.22",
		}},
		{Architecture: "arm64", Variant: "v8", Created: arm64Created},
		{Architecture: "arm", Variant: "v7", Created: armCreated},
	} {
		o.Files = map[string]string{"/etc/os-release": imagetest.AlpineOSRelease}
		img, err := imagetest.Image(o)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	idx, err := imagetest.Index(imgs, true)
	if err != nil {
		t.Fatal(err)
	}
	d, err := imagetest.PushIndex(context.Background(), reg.Host+"/base/alpine:3.22", idx)
	if err != nil {
		t.Fatal(err)
	}
	return mustDigest(t, reg.Host+"/base/alpine@"+d)
}

func TestInspectIndex(t *testing.T) {
	reg := registrytest.New(t)
	ref := pushIndex(t, reg)
	c := registry.New(fastOptions(registry.Options{}))

	tests := []struct {
		name          string
		platforms     []string
		wantPlatforms []string
		wantCreated   time.Time
		wantBase      string
		wantKind      registry.ErrorKind
		wantMsg       string
	}{
		{
			name:          "all real platforms, attestations skipped",
			wantPlatforms: []string{"linux/amd64", "linux/arm/v7", "linux/arm64"},
			wantCreated:   arm64Created,
			wantBase:      upstreamDigest,
		},
		{
			name:          "filter by os/arch",
			platforms:     []string{"linux/arm64"},
			wantPlatforms: []string{"linux/arm64"},
			wantCreated:   arm64Created,
		},
		{
			name:          "filter with arm64 default variant",
			platforms:     []string{"linux/arm64/v8", "linux/amd64"},
			wantPlatforms: []string{"linux/amd64", "linux/arm64"},
			wantCreated:   arm64Created,
			wantBase:      upstreamDigest,
		},
		{
			name:          "filter without variant matches variants",
			platforms:     []string{"linux/arm"},
			wantPlatforms: []string{"linux/arm/v7"},
			wantCreated:   armCreated,
		},
		{
			name:      "filter matching nothing",
			platforms: []string{"linux/s390x"},
			wantKind:  registry.KindNotFound,
			wantMsg:   "no platform of the index matches linux/s390x (available: linux/amd64, linux/arm/v7, linux/arm64)",
		},
		{
			name:      "malformed filter",
			platforms: []string{"linux"},
			wantKind:  registry.KindInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := c.Inspect(context.Background(), ref, registry.Access{}, tt.platforms)
			if tt.wantKind != "" {
				if got := registry.KindOf(err); got != tt.wantKind {
					t.Fatalf("kind = %q (%v), want %q", got, err, tt.wantKind)
				}
				if tt.wantMsg != "" && err.Error() != tt.wantMsg {
					t.Errorf("message = %q, want %q", err.Error(), tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if info.Digest != ref.DigestStr() {
				t.Errorf("digest = %s, want %s", info.Digest, ref.DigestStr())
			}
			if info.MediaType != "application/vnd.oci.image.index.v1+json" {
				t.Errorf("media type = %s", info.MediaType)
			}
			if !slices.Equal(info.Platforms, tt.wantPlatforms) {
				t.Errorf("platforms = %v, want %v", info.Platforms, tt.wantPlatforms)
			}
			if !info.Created.Equal(tt.wantCreated) {
				t.Errorf("created = %v, want %v", info.Created, tt.wantCreated)
			}
			if info.BaseDigest != tt.wantBase {
				t.Errorf("base digest = %q, want %q", info.BaseDigest, tt.wantBase)
			}
		})
	}
}

func TestInspectSingleImage(t *testing.T) {
	reg := registrytest.New(t)
	created := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	img, err := imagetest.DebianImage(imagetest.DistroOptions{
		Architecture: "arm64",
		Created:      created,
		Packages:     []imagetest.Package{{Name: "libc6", Version: "2.36-9+deb12u10", Source: "glibc"}},
		Annotations: map[string]string{
			registry.AnnotationBaseDigest: upstreamDigest,
			registry.AnnotationBaseName:   "docker.io/library/debian:bookworm-slim",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := imagetest.PushImage(context.Background(), reg.Host+"/base/debian:12", img)
	if err != nil {
		t.Fatal(err)
	}
	ref := mustDigest(t, reg.Host+"/base/debian@"+d)
	c := registry.New(fastOptions(registry.Options{}))

	info, err := c.Inspect(context.Background(), ref, registry.Access{}, nil)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	want := registry.ImageInfo{
		Digest:     d,
		MediaType:  "application/vnd.oci.image.manifest.v1+json",
		Platforms:  []string{"linux/arm64"},
		Created:    created,
		BaseDigest: upstreamDigest,
		BaseName:   "docker.io/library/debian:bookworm-slim",
	}
	if info.Digest != want.Digest || info.MediaType != want.MediaType || !slices.Equal(info.Platforms, want.Platforms) ||
		!info.Created.Equal(want.Created) || info.BaseDigest != want.BaseDigest || info.BaseName != want.BaseName {
		t.Errorf("Inspect = %+v, want %+v", *info, want)
	}

	_, err = c.Inspect(context.Background(), ref, registry.Access{}, []string{"linux/amd64"})
	if got := registry.KindOf(err); got != registry.KindNotFound {
		t.Errorf("filter not matching the image: kind = %q (%v), want %q", got, err, registry.KindNotFound)
	}
}

func TestInspectRefusesLargeManifests(t *testing.T) {
	reg := registrytest.New(t)
	big := map[string]string{"org.example.padding": strings.Repeat("x", 4096)}
	d := pushImage(t, reg.Host+"/base/big:1", imagetest.ImageOptions{Annotations: big})
	ref := mustDigest(t, reg.Host+"/base/big@"+d)

	c := registry.New(fastOptions(registry.Options{MaxManifestBytes: 2048}))
	_, err := c.Inspect(context.Background(), ref, registry.Access{}, nil)
	if got := registry.KindOf(err); got != registry.KindInvalid {
		t.Fatalf("kind = %q (%v), want %q", got, err, registry.KindInvalid)
	}
	if err.Error() != "manifest larger than 2048 bytes" {
		t.Errorf("message = %q", err.Error())
	}

	// The same client reads a manifest under the limit.
	small := pushImage(t, reg.Host+"/base/small:1", imagetest.ImageOptions{})
	if _, err := c.Inspect(context.Background(), mustDigest(t, reg.Host+"/base/small@"+small), registry.Access{}, nil); err != nil {
		t.Errorf("Inspect of a small manifest: %v", err)
	}
}

func TestInspectUnknownDigest(t *testing.T) {
	reg := registrytest.New(t)
	pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{})
	c := registry.New(fastOptions(registry.Options{}))
	_, err := c.Inspect(context.Background(), mustDigest(t, reg.Host+"/base/alpine@"+upstreamDigest), registry.Access{}, nil)
	if got := registry.KindOf(err); got != registry.KindNotFound {
		t.Fatalf("kind = %q (%v), want %q", got, err, registry.KindNotFound)
	}
}
