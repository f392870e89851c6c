package imagetest_test

import (
	"archive/tar"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

func TestImageIsDeterministic(t *testing.T) {
	o := imagetest.ImageOptions{
		Files:   map[string]string{"/a/b.txt": "b", "/c.txt": "c"},
		Created: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Labels:  map[string]string{"org.opencontainers.image.source": "https://example.com"},
	}
	a, err := imagetest.Image(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := imagetest.Image(o)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("digests differ: %s, %s", da, db)
	}
	o.Files["/c.txt"] = "changed"
	c, err := imagetest.Image(o)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Error("different content gave the same digest")
	}
}

func files(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func TestDistroImages(t *testing.T) {
	alpine, err := imagetest.AlpineImage(imagetest.DistroOptions{Packages: []imagetest.Package{{Name: "musl", Version: "1.2.5-r10"}}})
	if err != nil {
		t.Fatal(err)
	}
	fa := files(t, alpine)
	if !strings.Contains(fa["etc/os-release"], "VERSION_ID=3.22") || !strings.Contains(fa["lib/apk/db/installed"], "P:musl\nV:1.2.5-r10\n") {
		t.Errorf("alpine files: %q", fa)
	}
	debian, err := imagetest.DebianImage(imagetest.DistroOptions{Packages: []imagetest.Package{{Name: "libc6", Version: "2.36-9+deb12u10", Source: "glibc"}}})
	if err != nil {
		t.Fatal(err)
	}
	fd := files(t, debian)
	if !strings.Contains(fd["etc/os-release"], "VERSION_CODENAME=bookworm") ||
		!strings.Contains(fd["var/lib/dpkg/status"], "Package: libc6\nStatus: install ok installed\n") ||
		!strings.Contains(fd["var/lib/dpkg/status"], "Version: 2.36-9+deb12u10\n") {
		t.Errorf("debian files: %q", fd)
	}
}

func TestIndexWithAttestationRoundTrips(t *testing.T) {
	reg := registrytest.New(t)
	var imgs []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := imagetest.Image(imagetest.ImageOptions{Architecture: arch, Annotations: map[string]string{imagetest.AnnotationBaseName: "docker.io/library/alpine:3.22"}})
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
	ref, err := name.ParseReference(reg.Host + "/base/alpine:3.22")
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if gd, _ := got.Digest(); gd.String() != d {
		t.Errorf("pulled digest %s, pushed %s", gd, d)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms, attestations []string
	for _, m := range im.Manifests {
		if m.Annotations[imagetest.AnnotationReferenceType] == imagetest.ReferenceTypeAttestation {
			attestations = append(attestations, m.Platform.String())
			continue
		}
		platforms = append(platforms, m.Platform.String())
	}
	if strings.Join(platforms, ",") != "linux/amd64,linux/arm64" || strings.Join(attestations, ",") != "unknown/unknown,unknown/unknown" {
		t.Errorf("platforms %v, attestations %v", platforms, attestations)
	}
}

func TestStreamedLayerDigestsWhatItStreams(t *testing.T) {
	write := func(tw *tar.Writer) error {
		for i := range 3 {
			content := strings.Repeat(string(rune('a'+i)), 1<<16)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f" + string(rune('0'+i)), Mode: 0o644, Size: int64(len(content))}); err != nil {
				return err
			}
			if _, err := io.WriteString(tw, content); err != nil {
				return err
			}
		}
		return nil
	}
	l, err := imagetest.NewStreamedLayer(write)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := v1.SHA256(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	diffID, _ := l.DiffID()
	size, _ := l.Size()
	if h != d || h != diffID || n != size {
		t.Errorf("streamed %s (%d bytes), layer says digest %s, diffID %s, %d bytes", h, n, d, diffID, size)
	}

	// A writer that changes its output fails the read rather than
	// serving bytes that do not match the digest.
	calls := 0
	changing, err := imagetest.NewStreamedLayer(func(tw *tar.Writer) error {
		calls++
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "run" + string(rune('0'+calls)) + "/", Mode: 0o755})
	})
	if err != nil {
		t.Fatal(err)
	}
	rc, err = changing.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "not deterministic") {
		t.Errorf("reading a layer whose writer changed: err = %v", err)
	}
}
