package trivy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// TestFindingsMatchTrivyCLI scans the same images with the trivy CLI
// (built by hack/trivy-cli.sh) against the same DB artifact and compares
// the findings. It runs only when PLINTH_TRIVY_CLI names the binary.
func TestFindingsMatchTrivyCLI(t *testing.T) {
	cli := os.Getenv("PLINTH_TRIVY_CLI")
	if cli == "" {
		t.Skip("PLINTH_TRIVY_CLI is not set; build the CLI with hack/trivy-cli.sh")
	}
	advs := []vulndbtest.Advisory{
		muslCVE,
		{ID: "CVE-2099-0002", Distro: vulndbtest.Alpine322, Package: "busybox", FixedVersion: "1.37.0-r30", Severity: "MEDIUM"},
		{ID: "CVE-2099-0003", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "1.3.1-r3", Severity: "HIGH"},
		{ID: "CVE-2099-0004", Distro: vulndbtest.Alpine322, Package: "openssl", FixedVersion: "3.5.4-r0", Severity: "LOW"},
		{ID: "CVE-2099-1001", Distro: vulndbtest.Debian12, Package: "openssl", FixedVersion: "3.0.17-1~deb12u3", Severity: "HIGH"},
		{ID: "CVE-2099-1002", Distro: vulndbtest.Debian12, Package: "glibc", FixedVersion: "2.36-9+deb12u11", Severity: "CRITICAL"},
		{ID: "CVE-2099-1003", Distro: vulndbtest.Debian12, Package: "zlib", Severity: "UNKNOWN"},
	}
	e := newEnv(t, advs)
	images := map[string]v1.Image{
		"alpine": alpine(t, "",
			imagetest.Package{Name: "musl", Version: "1.2.5-r0"},
			imagetest.Package{Name: "busybox", Version: "1.37.0-r20"},
			imagetest.Package{Name: "zlib", Version: "1.3.1-r3"},
			imagetest.Package{Name: "libcrypto3", Version: "3.5.1-r0", Source: "openssl"},
			imagetest.Package{Name: "libssl3", Version: "3.5.1-r0", Source: "openssl"},
		),
		"debian": debian(t,
			imagetest.Package{Name: "libssl3", Version: "3.0.17-1~deb12u2", Source: "openssl"},
			imagetest.Package{Name: "libc6", Version: "2.36-9+deb12u10", Source: "glibc"},
			imagetest.Package{Name: "libc-bin", Version: "2.36-9+deb12u10", Source: "glibc"},
			imagetest.Package{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Source: "zlib"},
		),
	}
	for name, img := range images {
		t.Run(name, func(t *testing.T) {
			d := e.push("cli/"+name, img)
			r := e.mustScan(d)
			var ours []cliFinding
			for _, f := range r.Findings {
				ours = append(ours, cliFinding{f.ID, f.Package, f.InstalledVersion, f.FixedVersion, f.Severity})
			}
			theirs := runCLI(t, cli, e.dbRepo, d.String())
			sortCLI(ours)
			sortCLI(theirs)
			if len(ours) == 0 {
				t.Fatal("no findings: the comparison would prove nothing")
			}
			t.Logf("%d findings: %v", len(ours), ours)
			if diff := cmp.Diff(theirs, ours); diff != "" {
				t.Errorf("findings (-trivy CLI +plinth):\n%s", diff)
			}
		})
	}
}

type cliFinding struct {
	ID, Package, Installed, Fixed, Severity string
}

func sortCLI(fs []cliFinding) {
	slices.SortFunc(fs, func(a, b cliFinding) int {
		return cmpStrings(a.ID+"\x00"+a.Package+"\x00"+a.Installed, b.ID+"\x00"+b.Package+"\x00"+b.Installed)
	})
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func runCLI(t *testing.T, cli, dbRepo, image string) []cliFinding {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, cli, "image",
		"--db-repository", dbRepo, "--insecure", "--skip-java-db-update",
		"--scanners", "vuln", "--format", "json", "--quiet",
		"--cache-dir", t.TempDir(), image)
	cmd.Env = append(os.Environ(), "HOME="+home, "TRIVY_NO_PROGRESS=true", "TRIVY_DISABLE_VEX_NOTICE=true")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("trivy CLI: %v\n%s", err, stderr)
	}
	var rep struct {
		Results []struct {
			Vulnerabilities []struct {
				VulnerabilityID  string
				PkgName          string
				InstalledVersion string
				FixedVersion     string
				Severity         string
			}
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("trivy CLI output: %v\n%s", err, out)
	}
	var fs []cliFinding
	for _, res := range rep.Results {
		for _, v := range res.Vulnerabilities {
			fs = append(fs, cliFinding{v.VulnerabilityID, v.PkgName, v.InstalledVersion, v.FixedVersion, v.Severity})
		}
	}
	return fs
}
