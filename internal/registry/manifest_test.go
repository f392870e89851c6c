package registry_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

func TestManifestReadsRawContentWithOneRequest(t *testing.T) {
	reg := registrytest.New(t)
	d := pushImage(t, reg.Host+"/base/alpine:3.22", imagetest.ImageOptions{Files: map[string]string{"/etc/os-release": "ID=alpine\n"}})
	ref, err := name.NewDigest(reg.Host + "/base/alpine@" + d)
	if err != nil {
		t.Fatal(err)
	}
	c := registry.New(fastOptions(registry.Options{}))
	if _, err := c.Head(context.Background(), ref, registry.Access{}); err != nil { // warms the transport
		t.Fatal(err)
	}
	reg.ResetCounts()
	m, err := c.Manifest(context.Background(), ref, registry.Access{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest != d || m.MediaType != "application/vnd.oci.image.manifest.v1+json" || len(m.Raw) == 0 {
		t.Errorf("got digest %s, media type %s, %d bytes", m.Digest, m.MediaType, len(m.Raw))
	}
	if n := reg.Requests(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}

	small := registry.New(fastOptions(registry.Options{MaxManifestBytes: 16}))
	if _, err := small.Manifest(context.Background(), ref, registry.Access{}); registry.KindOf(err) != registry.KindInvalid {
		t.Errorf("oversized manifest: error %v, want kind Invalid", err)
	}
	missing, _ := name.NewDigest(reg.Host + "/base/alpine@sha256:" + "00000000000000000000000000000000000000000000000000000000000000ab")
	if _, err := c.Manifest(context.Background(), missing, registry.Access{}); registry.KindOf(err) != registry.KindNotFound {
		t.Errorf("missing manifest: error %v, want kind NotFound", err)
	}
}
