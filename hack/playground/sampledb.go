package main

import (
	"context"
	"fmt"
	"os"
	"time"

	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// sampleAdvisories are made-up vulnerabilities for the sample images. They
// are SAMPLE DATA: their ids start with SAMPLE- so nobody mistakes them for
// real advisories.
var sampleAdvisories = []vulndbtest.Advisory{
	// base/python:3.9 ships an openssl with a critical, fixed flaw.
	{ID: "SAMPLE-2026-0001", Distro: vulndbtest.Debian12, Package: "openssl", FixedVersion: "3.0.17-1~deb12u2", Severity: "CRITICAL"},
	// Every Debian sample has a high flaw in glibc, accepted by an exception
	// of the sample policy.
	{ID: "SAMPLE-2026-0002", Distro: vulndbtest.Debian12, Package: "glibc", FixedVersion: "2.36-9+deb12u11", Severity: "HIGH"},
	// A medium flaw in bash without a fix: allowed by the sample policy.
	{ID: "SAMPLE-2026-0003", Distro: vulndbtest.Debian12, Package: "bash", Severity: "MEDIUM"},
	// Alpine's busybox had a flaw fixed before the sample was built.
	{ID: "SAMPLE-2026-0004", Distro: vulndbtest.Alpine322, Package: "busybox", FixedVersion: "1.37.0-r18", Severity: "HIGH"},
}

// pushSampleDB builds a vulnerability DB of sampleAdvisories and pushes it
// to host/aquasec/trivy-db:2, returning that reference.
func pushSampleDB(ctx context.Context, host string) (string, error) {
	dir, err := os.MkdirTemp("", "plinth-sample-db-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if _, err := vulndbtest.Build(dir, sampleAdvisories, time.Now().UTC().Add(-time.Hour).Truncate(time.Second)); err != nil {
		return "", fmt.Errorf("building the sample vulnerability DB: %w", err)
	}
	ref := host + "/aquasec/trivy-db:2"
	if _, err := vulndbtest.Push(ctx, ref, dir); err != nil {
		return "", fmt.Errorf("pushing the sample vulnerability DB: %w", err)
	}
	return ref, nil
}
