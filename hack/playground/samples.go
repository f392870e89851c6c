package main

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// startSampleRegistry starts the sample registry and pushes the images the
// samples in config/samples refer to:
//   - base/alpine:3.22, built three days ago: approved and up to date;
//   - base/debian:12 (amd64 and arm64, with a build attestation), built from
//     upstream/debian:bookworm-slim, which has moved on since: stale,
//     UpstreamUpdated;
//   - base/python:3.9, built in 2024 with an old openssl: refused for a
//     (sample) critical vulnerability, and stale.
func startSampleRegistry(ctx context.Context, addr string) (*registrytest.Registry, error) {
	reg, err := registrytest.NewServer(addr)
	if err != nil {
		return nil, fmt.Errorf("starting the sample registry: %w", err)
	}
	host := localHost(reg)
	now := time.Now().UTC().Truncate(time.Second)
	fail := func(err error) (*registrytest.Registry, error) {
		reg.Close()
		return nil, fmt.Errorf("seeding the sample registry: %w", err)
	}

	alpine, err := imagetest.AlpineImage(imagetest.DistroOptions{
		Created:  now.Add(-72 * time.Hour),
		Packages: []imagetest.Package{{Name: "musl", Version: "1.2.5-r10"}, {Name: "busybox", Version: "1.37.0-r18"}},
	})
	if err != nil {
		return fail(err)
	}
	if _, err := imagetest.PushImage(ctx, host+"/base/alpine:3.22", alpine); err != nil {
		return fail(err)
	}

	debianPkgs := []imagetest.Package{{Name: "libc6", Version: "2.36-9+deb12u10", Source: "glibc"}, {Name: "bash", Version: "5.2.15-2+b8"}}
	upstream, err := imagetest.DebianImage(imagetest.DistroOptions{Created: now.Add(-240 * time.Hour), Packages: debianPkgs})
	if err != nil {
		return fail(err)
	}
	upstreamRef := host + "/upstream/debian:bookworm-slim"
	builtFrom, err := imagetest.PushImage(ctx, upstreamRef, upstream)
	if err != nil {
		return fail(err)
	}
	var platforms []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := imagetest.DebianImage(imagetest.DistroOptions{
			Created: now.Add(-120 * time.Hour), Architecture: arch, Packages: debianPkgs,
			Annotations: map[string]string{
				"org.opencontainers.image.base.name":   upstreamRef,
				"org.opencontainers.image.base.digest": builtFrom,
			},
		})
		if err != nil {
			return fail(err)
		}
		platforms = append(platforms, img)
	}
	idx, err := imagetest.Index(platforms, true)
	if err != nil {
		return fail(err)
	}
	if _, err := imagetest.PushIndex(ctx, host+"/base/debian:12", idx); err != nil {
		return fail(err)
	}
	// Debian has published a new bookworm-slim since base/debian:12 was
	// built.
	newer, err := imagetest.DebianImage(imagetest.DistroOptions{Created: now.Add(-24 * time.Hour),
		Packages: append(debianPkgs, imagetest.Package{Name: "tzdata", Version: "2025b-0+deb12u1"})})
	if err != nil {
		return fail(err)
	}
	if _, err := imagetest.PushImage(ctx, upstreamRef, newer); err != nil {
		return fail(err)
	}

	python, err := imagetest.DebianImage(imagetest.DistroOptions{
		Created:    time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		Packages:   append(debianPkgs, imagetest.Package{Name: "libssl3", Version: "3.0.15-1~deb12u1", Source: "openssl"}),
		ExtraFiles: map[string]string{"usr/local/bin/python3.9": "#!/bin/sh\n"},
	})
	if err != nil {
		return fail(err)
	}
	if _, err := imagetest.PushImage(ctx, host+"/base/python:3.9", python); err != nil {
		return fail(err)
	}
	return reg, nil
}
