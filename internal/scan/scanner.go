package scan

import (
	"context"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Scanner scans one image digest against the current vulnerability DB.
type Scanner interface {
	Scan(ctx context.Context, req Request) (*Report, error)

	// Cached returns the report of req under the current DB when one is
	// at hand, without scanning or any registry request.
	Cached(req Request) (*Report, bool)
}

// Request names the image to scan and how to reach it.
type Request struct {
	// Image is the image to scan, by digest: an index or a single manifest.
	Image name.Digest
	// Platforms selects the platforms of an index to scan, as os/arch or
	// os/arch/variant. Empty means every real platform of the index;
	// attestation manifests are never scanned. Ignored for a single manifest.
	Platforms []string
	// Keychain resolves registry credentials; nil means anonymous.
	Keychain authn.Keychain
	// Transport is the HTTP transport to the registry; nil means
	// http.DefaultTransport. Whether plain HTTP is used follows the
	// reference's registry (name.Insecure, loopback addresses).
	Transport http.RoundTripper
}

// Finding is one vulnerability in one package.
type Finding struct {
	// ID is the vulnerability identifier, such as CVE-2025-1234.
	ID string `json:"id"`
	// Severity is CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN.
	Severity string `json:"severity"`
	// Package is the installed package's name.
	Package string `json:"package"`
	// InstalledVersion is the version found in the image.
	InstalledVersion string `json:"installedVersion"`
	// FixedVersion is the first version with a fix; empty when there is none.
	FixedVersion string `json:"fixedVersion,omitempty"`
	// Status is the fix status as the DB reports it, such as "fixed",
	// "affected" or "will_not_fix".
	Status string `json:"status,omitempty"`
	// DataSource names the advisory feed, such as "alpine" or "debian".
	DataSource string `json:"dataSource,omitempty"`
	// Platforms lists the platforms the finding was seen on, sorted.
	Platforms []string `json:"platforms,omitempty"`
}

// Fixable reports whether a fixed version exists.
func (f Finding) Fixable() bool { return f.FixedVersion != "" }

// Report is the outcome of scanning one digest under one DB version.
type Report struct {
	// Digest is the scanned digest (of the index or manifest in the request).
	Digest string `json:"digest"`
	// DBVersion identifies the vulnerability DB build used, as a stable
	// string; equal strings mean the same DB.
	DBVersion string `json:"dbVersion"`
	// Findings are deduplicated across platforms and sorted by severity
	// (most severe first), then ID, then package.
	Findings []Finding `json:"findings"`
	// SBOM is a CycloneDX JSON document, as Trivy writes it, of the
	// packages of the first scanned platform (in Platforms order). It
	// lists components only, not vulnerabilities, so its content does not
	// depend on the DB.
	SBOM []byte `json:"sbom,omitempty"`
	// Platforms are the platforms scanned, sorted; for a single manifest
	// the platform from its config.
	Platforms []string `json:"platforms"`
	// Annotations of the manifest or index named by Digest.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Images holds the hardening facts of each scanned platform image, in
	// Platforms order.
	Images []ImageFacts `json:"images,omitempty"`
	// Secrets found in the layers of every scanned platform, deduplicated
	// and sorted by rule, then path.
	Secrets []SecretFinding `json:"secrets,omitempty"`
	// SecretsSkipped are the files the secret scanner skipped for their
	// size, sorted by path.
	SecretsSkipped []SkippedFile `json:"secretsSkipped,omitempty"`
	// ScannedAt is when the scan ran. A cached report keeps the time of
	// the scan that produced it.
	ScannedAt time.Time `json:"scannedAt"`
}
