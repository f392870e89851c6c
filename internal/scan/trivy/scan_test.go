package trivy

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"

	"github.com/plinth-dev/plinth/internal/scan"
)

// ignoreUnchecked leaves out what other tests check: times, the SBOM and
// the hardening facts.
var ignoreUnchecked = cmpopts.IgnoreFields(scan.Report{}, "ScannedAt", "SBOM", "Images")

func TestScanAlpineFindsFixableCVE(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{
		muslCVE,
		{ID: "CVE-2099-0002", Distro: vulndbtest.Alpine322, Package: "busybox", FixedVersion: "1.37.0-r5", Severity: "MEDIUM"},
	})
	vulnerable := e.push("base/alpine", alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}, imagetest.Package{Name: "busybox", Version: "1.37.0-r20"}))

	r := e.mustScan(vulnerable)
	want := &scan.Report{
		Digest:    vulnerable.DigestStr(),
		DBVersion: e.db.Version(),
		Platforms: []string{"linux/amd64"},
		Findings: []scan.Finding{{
			ID: "CVE-2099-0001", Severity: "CRITICAL", Package: "musl",
			InstalledVersion: "1.2.5-r0", FixedVersion: "1.2.5-r1",
			Status: "fixed", DataSource: "alpine", Platforms: []string{"linux/amd64"},
		}},
	}
	if diff := cmp.Diff(want, r, ignoreUnchecked); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if r.ScannedAt.IsZero() {
		t.Error("ScannedAt is zero")
	}

	fixed := e.push("base/alpine-fixed", alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r1"}))
	if r := e.mustScan(fixed); len(r.Findings) != 0 {
		t.Errorf("fixed image has findings: %+v", r.Findings)
	}
}

func TestScanDebianUsesSourcePackage(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{
		{ID: "CVE-2099-1001", Distro: vulndbtest.Debian12, Package: "openssl", FixedVersion: "3.0.17-1~deb12u3", Severity: "HIGH"},
		{ID: "CVE-2099-1002", Distro: vulndbtest.Debian12, Package: "glibc", FixedVersion: "2.36-9+deb12u5", Severity: "LOW"},
	})
	img := debian(t,
		imagetest.Package{Name: "libssl3", Version: "3.0.17-1~deb12u2", Source: "openssl"},
		imagetest.Package{Name: "libc6", Version: "2.36-9+deb12u10", Source: "glibc"},
	)
	r := e.mustScan(e.push("base/debian", img))
	want := []scan.Finding{{
		ID: "CVE-2099-1001", Severity: "HIGH", Package: "libssl3",
		InstalledVersion: "3.0.17-1~deb12u2", FixedVersion: "3.0.17-1~deb12u3",
		Status: "fixed", DataSource: "debian", Platforms: []string{"linux/amd64"},
	}}
	if diff := cmp.Diff(want, r.Findings); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestScanIndexMergesPlatformsAndSkipsAttestations(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{
		muslCVE,
		{ID: "CVE-2099-0003", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "1.3.1-r3", Severity: "HIGH"},
	})
	amd := alpine(t, "amd64", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}, imagetest.Package{Name: "zlib", Version: "1.3.1-r2"})
	arm := alpine(t, "arm64", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}, imagetest.Package{Name: "zlib", Version: "1.3.1-r3"})
	idx, err := imagetest.Index([]v1.Image{amd, arm}, true)
	if err != nil {
		t.Fatal(err)
	}
	d := e.pushIndex("base/multi", idx)

	r := e.mustScan(d)
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, r.Platforms); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
	got := map[string][]string{}
	for _, f := range r.Findings {
		got[f.ID] = f.Platforms
	}
	want := map[string][]string{
		"CVE-2099-0001": {"linux/amd64", "linux/arm64"},
		"CVE-2099-0003": {"linux/amd64"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("platforms per finding (-want +got):\n%s", diff)
	}
	if r.Findings[0].ID != "CVE-2099-0001" {
		t.Errorf("findings not sorted by severity: %+v", r.Findings)
	}

	// A platform filter scans only that platform.
	r = e.mustScan(d, "linux/arm64")
	if !slices.Equal(r.Platforms, []string{"linux/arm64"}) || len(r.Findings) != 1 {
		t.Errorf("filtered scan: platforms %v, findings %+v", r.Platforms, r.Findings)
	}

	if _, err := e.scan(d, "linux/s390x"); !errors.Is(err, scan.ErrNoMatchingPlatform) {
		t.Errorf("scan for a missing platform: err = %v, want ErrNoMatchingPlatform", err)
	}
}

func TestSBOMListsPackages(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	r := e.mustScan(e.push("base/alpine", alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}, imagetest.Package{Name: "zlib", Version: "1.3.1-r2"})))

	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Components  []struct {
			Type    string `json:"type"`
			Name    string `json:"name"`
			Version string `json:"version"`
			PURL    string `json:"purl"`
		} `json:"components"`
		Vulnerabilities []json.RawMessage `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(r.SBOM, &bom); err != nil {
		t.Fatalf("SBOM is not JSON: %v\n%s", err, r.SBOM)
	}
	t.Logf("CycloneDX spec version %s", bom.SpecVersion)
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
		t.Errorf("bomFormat %q specVersion %q", bom.BOMFormat, bom.SpecVersion)
	}
	pkgs := map[string]string{}
	for _, c := range bom.Components {
		if c.Type == "library" {
			pkgs[c.Name] = c.PURL
		}
	}
	want := map[string]string{
		"musl": "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=3.22.1",
		"zlib": "pkg:apk/alpine/zlib@1.3.1-r2?arch=x86_64&distro=3.22.1",
	}
	if diff := cmp.Diff(want, pkgs); diff != "" {
		t.Errorf("SBOM packages (-want +got):\n%s", diff)
	}
	if len(bom.Vulnerabilities) != 0 {
		t.Errorf("SBOM lists %d vulnerabilities, want none", len(bom.Vulnerabilities))
	}
}

func TestScanWithoutDBIsUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	d := e.push("base/alpine", alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}))
	if _, err := e.scan(d); !errors.Is(err, scan.ErrDBUnavailable) {
		t.Fatalf("Scan without DB: err = %v, want scan.ErrDBUnavailable", err)
	}
	if e.db.Version() != "" || !e.db.UpdatedAt().IsZero() {
		t.Errorf("Version %q UpdatedAt %v, want empty", e.db.Version(), e.db.UpdatedAt())
	}
	// The repository has nothing yet: the update fails, still no DB.
	if _, err := e.db.Update(context.Background()); err == nil {
		t.Fatal("Update from an empty repository succeeded")
	}
	if _, err := e.scan(d); !errors.Is(err, scan.ErrDBUnavailable) {
		t.Fatalf("Scan after failed update: err = %v, want scan.ErrDBUnavailable", err)
	}
}
