package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// ImageFacts are the facts of one platform image the hardening checks
// read.
type ImageFacts struct {
	// Platform of the image, such as linux/amd64.
	Platform string
	// User of the image config, as written there.
	User string
	// CompressedSize is the sum of the compressed layer sizes, in bytes.
	CompressedSize int64
	// Annotations of the platform's manifest.
	Annotations map[string]string
	// Setuid are the absolute paths of the setuid or setgid files of the
	// final filesystem.
	Setuid []string
	// Executables are the absolute paths of the regular files in the bin
	// directories of the final filesystem.
	Executables []string
}

// Secret is a secret found in a layer; it never holds the secret itself.
type Secret struct {
	// RuleID is the rule that matched, such as aws-access-key-id.
	RuleID string
	// Path of the file holding it.
	Path string
	// Layer is the diffID of the layer holding the file.
	Layer string
}

// ID is the exception id of the secret: its rule and file.
func (s Secret) ID() string { return s.RuleID + ":" + s.Path }

// Hardening is what the hardening and secrets part of the verdict is
// computed from.
type Hardening struct {
	// Policy is the ImagePolicy's hardening section; nil checks nothing
	// but secrets.
	Policy *catalogv1.HardeningPolicy
	// Annotations of the index (or of the single manifest) judged.
	Annotations map[string]string
	// Images are the scanned platform images.
	Images []ImageFacts
	// Secrets found in the layers.
	Secrets []Secret
	// SecretsSkipped counts the files the secret scanner skipped for
	// their size.
	SecretsSkipped int
	// Exceptions of the ImagePolicy.
	Exceptions []catalogv1.VulnerabilityException
	// Image is the BaseImage's spec.image, matched against exception globs.
	Image string
}

// hardFinding is one hardening or secret finding.
type hardFinding struct {
	id      string
	secret  bool
	message string
	// exceptionExpires is the expiry of the active exception covering it,
	// zero when none.
	exceptionExpires time.Time
}

// hardVerdict is the hardening and secrets part of a verdict.
type hardVerdict struct {
	blockingSecrets, violations []hardFinding
	excepted                    []hardFinding
	status                      catalogv1.HardeningStatus
}

// evaluateHardening judges the image's facts and secrets against the
// policy at time now.
func evaluateHardening(now time.Time, in *Hardening) hardVerdict {
	var found []hardFinding
	for _, s := range in.Secrets {
		found = append(found, hardFinding{id: s.ID(), secret: true,
			message: fmt.Sprintf("%s in %s (layer %s)", s.RuleID, s.Path, shortDigest(s.Layer))})
	}
	found = append(found, hardeningFindings(in)...)

	var v hardVerdict
	seen := map[string]bool{}
	for _, f := range found {
		if seen[f.id] {
			continue
		}
		seen[f.id] = true
		for _, e := range in.Exceptions {
			if e.ID == f.id && imageMatches(e.Image, in.Image) && now.Before(e.Expires.Time) && e.Expires.Time.After(f.exceptionExpires) {
				f.exceptionExpires = e.Expires.Time
			}
		}
		switch {
		case !f.exceptionExpires.IsZero():
			v.excepted = append(v.excepted, f)
		case f.secret:
			v.blockingSecrets = append(v.blockingSecrets, f)
		default:
			v.violations = append(v.violations, f)
		}
	}
	v.status = catalogv1.HardeningStatus{
		Violations: int32(len(v.violations)), Secrets: int32(len(v.blockingSecrets)),
		Excepted: int32(len(v.excepted)), SecretsSkipped: int32(in.SecretsSkipped),
	}
	for _, f := range slices.Concat(v.blockingSecrets, v.violations) {
		if len(v.status.Findings) == catalogv1.MaxHardeningFindings {
			break
		}
		v.status.Findings = append(v.status.Findings, f.id)
	}
	return v
}

// hardeningFindings runs the checks the policy turns on, in a fixed order:
// user, setuid, shells, package managers, size, annotations.
func hardeningFindings(in *Hardening) []hardFinding {
	p := in.Policy
	if p == nil {
		return nil
	}
	var out []hardFinding
	if p.RequireNonRootUser {
		var root []string
		for _, img := range in.Images {
			if IsRootUser(img.User) {
				root = append(root, img.Platform)
			}
		}
		if len(root) > 0 {
			out = append(out, hardFinding{id: catalogv1.CheckRequireNonRootUser,
				message: "the image runs as root on " + strings.Join(root, ", ")})
		}
	}
	if p.ForbidSetuid {
		for _, file := range unionOf(in.Images, func(i ImageFacts) []string { return i.Setuid }) {
			out = append(out, hardFinding{id: catalogv1.CheckForbidSetuid + ":" + file, message: "setuid or setgid file " + file})
		}
	}
	if p.ForbidShells {
		for _, file := range matchExecutables(in.Images, p.ShellsOrDefault()) {
			out = append(out, hardFinding{id: catalogv1.CheckForbidShells + ":" + file, message: "shell " + file})
		}
	}
	if p.ForbidPackageManagers {
		for _, file := range matchExecutables(in.Images, p.PackageManagersOrDefault()) {
			out = append(out, hardFinding{id: catalogv1.CheckForbidPackageManagers + ":" + file, message: "package manager " + file})
		}
	}
	if p.MaxCompressedSize != nil {
		limit := p.MaxCompressedSize.Value()
		for _, img := range in.Images {
			if img.CompressedSize > limit {
				out = append(out, hardFinding{id: catalogv1.CheckMaxCompressedSize,
					message: fmt.Sprintf("%s layers take %d bytes, more than %s", img.Platform, img.CompressedSize, p.MaxCompressedSize.String())})
				break
			}
		}
	}
	for _, key := range p.RequiredAnnotations {
		if in.Annotations[key] != "" {
			continue
		}
		for _, img := range in.Images {
			if img.Annotations[key] == "" {
				out = append(out, hardFinding{id: catalogv1.CheckRequiredAnnotations + ":" + key, message: "annotation " + key + " missing"})
				break
			}
		}
	}
	return out
}

// IsRootUser tells whether an image config's user runs as root: empty,
// "root" or uid 0, with or without a group.
func IsRootUser(user string) bool {
	u, _, _ := strings.Cut(strings.TrimSpace(user), ":")
	return u == "" || u == "root" || strings.Trim(u, "0") == ""
}

// unionOf collects the sorted, deduplicated values of every image.
func unionOf(imgs []ImageFacts, get func(ImageFacts) []string) []string {
	var out []string
	for _, img := range imgs {
		out = append(out, get(img)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// matchExecutables returns, sorted, the executables of any image that
// one of names designates: a bare name matches that file name in any bin
// directory; a path matches itself and its /usr twin (/bin/sh and
// /usr/bin/sh, /sbin/x and /usr/sbin/x), since merged-/usr images keep
// their files under /usr.
func matchExecutables(imgs []ImageFacts, names []string) []string {
	var out []string
	for _, file := range unionOf(imgs, func(i ImageFacts) []string { return i.Executables }) {
		for _, n := range names {
			if executableMatches(n, file) {
				out = append(out, file)
				break
			}
		}
	}
	return out
}

func executableMatches(name, file string) bool {
	if !strings.Contains(name, "/") {
		return path.Base(file) == name
	}
	return usrTwin(name) == usrTwin(file)
}

// usrTwin maps /bin/x and /sbin/x to their merged-/usr paths.
func usrTwin(p string) string {
	if strings.HasPrefix(p, "/bin/") || strings.HasPrefix(p, "/sbin/") {
		return "/usr" + p
	}
	return p
}

// listHard names up to three findings and counts the rest.
func listHard(fs []hardFinding) string {
	var parts []string
	for _, f := range fs[:min(3, len(fs))] {
		parts = append(parts, f.message)
	}
	s := strings.Join(parts, ", ")
	if n := len(fs) - 3; n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	return s
}

// shortDigest abbreviates a digest for messages.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}
