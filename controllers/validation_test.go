package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// The API server itself refuses bad objects, with messages a user can act
// on.
func TestAPIServerRefusesInvalidBaseImages(t *testing.T) {
	ns := newNamespace(t)
	policy := catalogv1.LocalObjectReference{Name: "p"}
	digest := catalogv1.Digest("sha256:" + strings.Repeat("a", 64))
	tests := []struct {
		name    string
		spec    catalogv1.BaseImageSpec
		message string // "" means accepted
	}{
		{"tag", catalogv1.BaseImageSpec{Image: "registry.example.com/base/python:3.13-slim", PolicyRef: policy}, ""},
		{"registry with port", catalogv1.BaseImageSpec{Image: "localhost:5000/base/alpine:3.22", PolicyRef: policy}, ""},
		{"docker hub short name", catalogv1.BaseImageSpec{Image: "debian:bookworm-slim", PolicyRef: policy}, ""},
		{"digest pin", catalogv1.BaseImageSpec{Image: "registry.example.com/base/python", Digest: digest, PolicyRef: policy}, ""},
		{"upper-case repository", catalogv1.BaseImageSpec{Image: "registry.example.com/Base/Python:3", PolicyRef: policy},
			"must be an image reference such as registry.example.com/base/python:3.13-slim"},
		{"spaces", catalogv1.BaseImageSpec{Image: "python 3", PolicyRef: policy}, "must be an image reference"},
		{"double colon", catalogv1.BaseImageSpec{Image: "python::3", PolicyRef: policy}, "must be an image reference"},
		{"digest inside image", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference("python@" + string(digest)), PolicyRef: policy}, "must be an image reference"},
		{"tag and digest", catalogv1.BaseImageSpec{Image: "registry.example.com/base/python:3.13", Digest: digest, PolicyRef: policy},
			"set either a tag in image or digest, not both"},
		{"neither tag nor digest", catalogv1.BaseImageSpec{Image: "registry.example.com/base/python", PolicyRef: policy},
			"image must carry a tag (repository:tag) unless digest pins it"},
		{"short digest", catalogv1.BaseImageSpec{Image: "registry.example.com/base/python", Digest: "sha256:abc", PolicyRef: policy},
			"must be a digest such as sha256: followed by 64 lower-case hex digits"},
		{"bad upstream", catalogv1.BaseImageSpec{Image: "python:3", Upstream: "Debian:Bookworm", PolicyRef: policy}, "spec.upstream"},
		{"bad platform", catalogv1.BaseImageSpec{Image: "python:3", Platforms: []catalogv1.Platform{"amd64"}, PolicyRef: policy},
			"must be a platform such as linux/amd64"},
		{"no policy", catalogv1.BaseImageSpec{Image: "python:3"}, "spec.policyRef.name"},
		{"long description", catalogv1.BaseImageSpec{Image: "python:3", PolicyRef: policy, Description: strings.Repeat("x", 1025)},
			"spec.description: Too long"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b" + string(rune('a'+i))}, Spec: tt.spec}
			err := k8sClient.Create(context.Background(), b)
			switch {
			case tt.message == "" && err != nil:
				t.Fatalf("refused a valid BaseImage: %v", err)
			case tt.message != "" && err == nil:
				t.Fatalf("accepted an invalid BaseImage")
			case tt.message != "" && !strings.Contains(err.Error(), tt.message):
				t.Fatalf("error %q does not say %q", err, tt.message)
			case err != nil:
				t.Logf("refused: %v", err)
			}
		})
	}
}

func TestAPIServerRefusesInvalidImagePolicies(t *testing.T) {
	ns := newNamespace(t)
	tests := []struct {
		name    string
		spec    catalogv1.ImagePolicySpec
		message string
	}{
		{"valid", catalogv1.ImagePolicySpec{AllowedRegistries: []string{"*.example.com"}, MaxAge: duration(720 * 3600e9), RescanInterval: duration(3600e9)}, ""},
		{"zero maxAge", catalogv1.ImagePolicySpec{MaxAge: duration(0)}, "maxAge must be a positive duration"},
		{"negative maxAge", catalogv1.ImagePolicySpec{MaxAge: duration(-3600e9)}, "spec.maxAge"},
		{"tiny rescanInterval", catalogv1.ImagePolicySpec{RescanInterval: duration(1e6)}, "rescanInterval must be a duration of at least 1m"},
		{"rescanInterval under a minute", catalogv1.ImagePolicySpec{RescanInterval: duration(59e9)}, "rescanInterval must be a duration of at least 1m"},
		{"rescanInterval of a minute", catalogv1.ImagePolicySpec{RescanInterval: duration(60e9)}, ""},
		{"empty registry pattern", catalogv1.ImagePolicySpec{AllowedRegistries: []string{""}}, "spec.allowedRegistries[0]"},
		{"hardening", catalogv1.ImagePolicySpec{Hardening: &catalogv1.HardeningPolicy{
			RequireNonRootUser: true, ForbidSetuid: true, ForbidShells: true, Shells: []string{"/bin/sh", "/usr/local/bin/zsh", "ash"},
			ForbidPackageManagers: true, MaxCompressedSize: quantity("200Mi"), RequiredAnnotations: []string{"org.opencontainers.image.source"},
		}}, ""},
		{"shell outside the bin directories", catalogv1.ImagePolicySpec{Hardening: &catalogv1.HardeningPolicy{ForbidShells: true, Shells: []string{"/opt/bin/sh"}}},
			"shells are command names or paths directly under /bin"},
		{"package manager in a sub-directory", catalogv1.ImagePolicySpec{Hardening: &catalogv1.HardeningPolicy{PackageManagers: []string{"/usr/bin/x/apt"}}},
			"packageManagers are command names or paths"},
		{"zero size", catalogv1.ImagePolicySpec{Hardening: &catalogv1.HardeningPolicy{MaxCompressedSize: quantity("0")}}, "maxCompressedSize must be positive"},
		{"hardening and secret exceptions", catalogv1.ImagePolicySpec{Exceptions: []catalogv1.VulnerabilityException{
			exception("forbidSetuid:/usr/bin/passwd"), exception("aws-access-key-id:/etc/app.env"), exception("requireNonRootUser"),
			exception("requiredAnnotations:org.opencontainers.image.source"), exception("CVE-2025-1234"),
		}}, ""},
		{"exception id with spaces", catalogv1.ImagePolicySpec{Exceptions: []catalogv1.VulnerabilityException{exception("forbidShells:/bin/my shell")}},
			"spec.exceptions[0].id"},
		{"exception id of a word", catalogv1.ImagePolicySpec{Exceptions: []catalogv1.VulnerabilityException{exception("anything")}},
			"spec.exceptions[0].id"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &catalogv1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p" + string(rune('a'+i))}, Spec: tt.spec}
			err := k8sClient.Create(context.Background(), p)
			switch {
			case tt.message == "" && err != nil:
				t.Fatalf("refused a valid ImagePolicy: %v", err)
			case tt.message != "" && err == nil:
				t.Fatalf("accepted an invalid ImagePolicy")
			case tt.message != "" && !strings.Contains(err.Error(), tt.message):
				t.Fatalf("error %q does not say %q", err, tt.message)
			}
		})
	}
}

func quantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func exception(id string) catalogv1.VulnerabilityException {
	return catalogv1.VulnerabilityException{ID: id, Expires: metav1.NewTime(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)), Justification: "accepted"}
}
