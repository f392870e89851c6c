package policy

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

func TestHardening(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	later := metav1.NewTime(now.Add(48 * time.Hour))
	earlier := metav1.NewTime(now.Add(-time.Hour))
	size := resource.MustParse("10Mi")
	clean := ImageFacts{Platform: "linux/amd64", User: "65532", CompressedSize: 1 << 20,
		Executables: []string{"/usr/bin/app"}}
	strict := &catalogv1.HardeningPolicy{
		RequireNonRootUser: true, ForbidSetuid: true, ForbidShells: true, ForbidPackageManagers: true,
		MaxCompressedSize: &size, RequiredAnnotations: []string{"org.opencontainers.image.source"},
	}
	with := func(f func(*ImageFacts)) []ImageFacts {
		img := clean
		f(&img)
		return []ImageFacts{img}
	}
	exception := func(id string, expires metav1.Time) []catalogv1.VulnerabilityException {
		return []catalogv1.VulnerabilityException{{ID: id, Expires: expires, Justification: "accepted"}}
	}
	annotated := map[string]string{"org.opencontainers.image.source": "https://example.com/src"}
	tests := []struct {
		name     string
		in       Hardening
		reason   string
		message  string // part of the message
		findings []string
		excepted int32
	}{
		{name: "hardened image", in: Hardening{Policy: strict, Images: []ImageFacts{clean}, Annotations: annotated},
			reason: catalogv1.PolicyPassedReason},
		{name: "no policy checks only secrets", in: Hardening{Images: with(func(i *ImageFacts) { i.User = "" })},
			reason: catalogv1.PolicyPassedReason},
		{name: "root user", in: Hardening{Policy: strict, Annotations: annotated, Images: with(func(i *ImageFacts) { i.User = "0:0" })},
			reason: catalogv1.HardeningViolationReason, message: "runs as root on linux/amd64", findings: []string{"requireNonRootUser"}},
		{name: "no user counts as root", in: Hardening{Policy: strict, Annotations: annotated, Images: with(func(i *ImageFacts) { i.User = "" })},
			reason: catalogv1.HardeningViolationReason, findings: []string{"requireNonRootUser"}},
		{name: "root on one platform of two", in: Hardening{Policy: strict, Annotations: annotated,
			Images: append(with(func(i *ImageFacts) { i.User = "root"; i.Platform = "linux/arm64" }), clean)},
			reason: catalogv1.HardeningViolationReason, message: "root on linux/arm64", findings: []string{"requireNonRootUser"}},
		{name: "setuid file", in: Hardening{Policy: strict, Annotations: annotated, Images: with(func(i *ImageFacts) { i.Setuid = []string{"/usr/bin/passwd"} })},
			reason: catalogv1.HardeningViolationReason, message: "setuid or setgid file /usr/bin/passwd", findings: []string{"forbidSetuid:/usr/bin/passwd"}},
		{name: "setuid excepted", in: Hardening{Policy: strict, Annotations: annotated, Exceptions: exception("forbidSetuid:/usr/bin/passwd", later),
			Images: with(func(i *ImageFacts) { i.Setuid = []string{"/usr/bin/passwd"} })},
			reason: catalogv1.PolicyPassedReason, excepted: 1},
		{name: "expired exception", in: Hardening{Policy: strict, Annotations: annotated, Exceptions: exception("forbidSetuid:/usr/bin/passwd", earlier),
			Images: with(func(i *ImageFacts) { i.Setuid = []string{"/usr/bin/passwd"} })},
			reason: catalogv1.HardeningViolationReason, findings: []string{"forbidSetuid:/usr/bin/passwd"}},
		{name: "shell under merged usr", in: Hardening{Policy: strict, Annotations: annotated,
			Images: with(func(i *ImageFacts) { i.Executables = []string{"/usr/bin/app", "/usr/bin/bash"} })},
			reason: catalogv1.HardeningViolationReason, findings: []string{"forbidShells:/usr/bin/bash"}},
		{name: "shells allowed", in: Hardening{Policy: &catalogv1.HardeningPolicy{ForbidPackageManagers: true},
			Images: with(func(i *ImageFacts) { i.Executables = []string{"/bin/sh"} })},
			reason: catalogv1.PolicyPassedReason},
		{name: "package manager by name", in: Hardening{Policy: strict, Annotations: annotated,
			Images: with(func(i *ImageFacts) { i.Executables = []string{"/sbin/apk", "/usr/local/bin/pip"} })},
			reason: catalogv1.HardeningViolationReason, findings: []string{"forbidPackageManagers:/sbin/apk", "forbidPackageManagers:/usr/local/bin/pip"}},
		{name: "own shell list", in: Hardening{Policy: &catalogv1.HardeningPolicy{ForbidShells: true, Shells: []string{"zsh"}},
			Images: with(func(i *ImageFacts) { i.Executables = []string{"/bin/sh", "/usr/local/bin/zsh"} })},
			reason: catalogv1.HardeningViolationReason, findings: []string{"forbidShells:/usr/local/bin/zsh"}},
		{name: "too large", in: Hardening{Policy: strict, Annotations: annotated, Images: with(func(i *ImageFacts) { i.CompressedSize = 11 << 20 })},
			reason: catalogv1.HardeningViolationReason, findings: []string{"maxCompressedSize"}},
		{name: "annotation on every manifest", in: Hardening{Policy: strict, Images: with(func(i *ImageFacts) { i.Annotations = annotated })},
			reason: catalogv1.PolicyPassedReason},
		{name: "annotation missing", in: Hardening{Policy: strict, Images: []ImageFacts{clean}},
			reason: catalogv1.HardeningViolationReason, findings: []string{"requiredAnnotations:org.opencontainers.image.source"}},
		{name: "secret", in: Hardening{Images: []ImageFacts{clean},
			Secrets: []Secret{{RuleID: "aws-access-key-id", Path: "/etc/app.env", Layer: "sha256:0123456789abcdef0123"}}},
			reason: catalogv1.SecretFoundReason, message: "aws-access-key-id in /etc/app.env (layer sha256:0123456789ab)",
			findings: []string{"aws-access-key-id:/etc/app.env"}},
		{name: "secret excepted", in: Hardening{Images: []ImageFacts{clean}, Exceptions: exception("aws-access-key-id:/etc/app.env", later),
			Secrets: []Secret{{RuleID: "aws-access-key-id", Path: "/etc/app.env"}}},
			reason: catalogv1.PolicyPassedReason, excepted: 1},
		{name: "exception for another image", in: Hardening{Images: []ImageFacts{clean}, Image: "registry.example.com/base/a:1",
			Exceptions: []catalogv1.VulnerabilityException{{ID: "aws-access-key-id:/etc/app.env", Image: "registry.example.com/base/b*", Expires: later}},
			Secrets:    []Secret{{RuleID: "aws-access-key-id", Path: "/etc/app.env"}}},
			reason: catalogv1.SecretFoundReason, findings: []string{"aws-access-key-id:/etc/app.env"}},
		{name: "secret before hardening", in: Hardening{Policy: strict, Images: with(func(i *ImageFacts) { i.User = "" }),
			Secrets: []Secret{{RuleID: "github-pat", Path: "/root/.netrc"}}},
			reason:   catalogv1.SecretFoundReason,
			findings: []string{"github-pat:/root/.netrc", "requireNonRootUser", "requiredAnnotations:org.opencontainers.image.source"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			v := Evaluate(Input{Now: now, Hardening: &in})
			if v.ApprovedReason != tt.reason || v.Approved != (tt.reason == catalogv1.PolicyPassedReason) {
				t.Fatalf("approved %v %s (%s), want %s", v.Approved, v.ApprovedReason, v.ApprovedMessage, tt.reason)
			}
			if !strings.Contains(v.ApprovedMessage, tt.message) {
				t.Errorf("message %q does not say %q", v.ApprovedMessage, tt.message)
			}
			if v.Hardening == nil {
				t.Fatal("no hardening status")
			}
			if strings.Join(v.Hardening.Findings, ",") != strings.Join(tt.findings, ",") {
				t.Errorf("findings %v, want %v", v.Hardening.Findings, tt.findings)
			}
			if v.Hardening.Excepted != tt.excepted {
				t.Errorf("excepted %d, want %d", v.Hardening.Excepted, tt.excepted)
			}
			if tt.excepted > 0 && (!v.RevokeDeadline.Equal(later.Time) || !v.NextDeadline.Equal(later.Time) || len(v.ExceptionsApplied) != 1) {
				t.Errorf("an exception relied on must set the deadlines: revoke %v, next %v, applied %v", v.RevokeDeadline, v.NextDeadline, v.ExceptionsApplied)
			}
		})
	}
}

func TestVulnerabilitiesKeepTheirReasonOverHardening(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	v := Evaluate(Input{Now: now,
		Vulnerabilities: &Vulnerabilities{Findings: []Finding{{ID: "CVE-2099-1", Severity: catalogv1.SeverityCritical, Package: "musl"}}},
		Hardening:       &Hardening{Policy: &catalogv1.HardeningPolicy{RequireNonRootUser: true}, Images: []ImageFacts{{Platform: "linux/amd64"}}},
	})
	if v.ApprovedReason != catalogv1.VulnerabilitiesExceedThresholdReason || v.Hardening.Violations != 1 {
		t.Fatalf("got %s with %d violations", v.ApprovedReason, v.Hardening.Violations)
	}
}

func TestIsRootUser(t *testing.T) {
	for user, root := range map[string]bool{"": true, "root": true, "0": true, "0:0": true, "root:root": true, "00": true,
		"1000": false, "nonroot": false, "65532:65532": false, "app:0": false, "10": false} {
		if IsRootUser(user) != root {
			t.Errorf("IsRootUser(%q) = %v, want %v", user, !root, root)
		}
	}
}
