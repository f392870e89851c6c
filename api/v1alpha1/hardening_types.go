package v1alpha1

import "k8s.io/apimachinery/pkg/api/resource"

// Names of the hardening checks. An exception for a hardening finding has
// the id "<check>:<subject>", such as "forbidSetuid:/usr/bin/passwd", or
// the check name alone for the image-wide checks.
const (
	CheckRequireNonRootUser    = "requireNonRootUser"
	CheckForbidSetuid          = "forbidSetuid"
	CheckForbidShells          = "forbidShells"
	CheckForbidPackageManagers = "forbidPackageManagers"
	CheckMaxCompressedSize     = "maxCompressedSize"
	CheckRequiredAnnotations   = "requiredAnnotations"
)

// DefaultShells are the shells forbidShells looks for when shells is
// unset.
var DefaultShells = []string{"/bin/sh", "/bin/bash", "/bin/dash", "/bin/busybox"}

// DefaultPackageManagers are the commands forbidPackageManagers looks for
// when packageManagers is unset.
var DefaultPackageManagers = []string{"apt", "apt-get", "dpkg", "apk", "rpm", "dnf", "yum", "microdnf", "pip", "pip3"}

// HardeningPolicy holds the checks on an image's configuration and final
// filesystem. Every check is off unless set. A finding blocks approval
// (HardeningViolation) unless an exception of the policy names it.
type HardeningPolicy struct {
	// requireNonRootUser refuses an image whose config runs as root: no
	// user, "root", "0", or a group-qualified form of these such as "0:0".
	// Every scanned platform is checked. Exception id: requireNonRootUser.
	// +optional
	RequireNonRootUser bool `json:"requireNonRootUser,omitempty"`

	// forbidSetuid refuses setuid and setgid files in the final
	// filesystem; a file a later layer deletes (whiteout or opaque
	// directory) is gone. Exception id: forbidSetuid:<path>.
	// +optional
	ForbidSetuid bool `json:"forbidSetuid,omitempty"`

	// forbidShells refuses an image holding one of shells. Exception id:
	// forbidShells:<path>.
	// +optional
	ForbidShells bool `json:"forbidShells,omitempty"`

	// shells are the files forbidShells looks for: an absolute path in a
	// bin directory (/bin, /sbin, /usr/bin, /usr/sbin, /usr/local/bin,
	// /usr/local/sbin), which also matches its /usr twin (/bin/sh and
	// /usr/bin/sh), or a bare command name, found in any of those
	// directories. Defaults to /bin/sh, /bin/bash, /bin/dash and
	// /bin/busybox.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.all(p, !p.contains('/') || p.matches('^/(usr/(local/)?)?s?bin/[^/]+$'))",message="shells are command names or paths directly under /bin, /sbin, /usr/bin, /usr/sbin, /usr/local/bin or /usr/local/sbin"
	Shells []string `json:"shells,omitempty"`

	// forbidPackageManagers refuses an image holding one of
	// packageManagers. Exception id: forbidPackageManagers:<path>.
	// +optional
	ForbidPackageManagers bool `json:"forbidPackageManagers,omitempty"`

	// packageManagers are the files forbidPackageManagers looks for, in
	// the form shells takes. Defaults to apt, apt-get, dpkg, apk, rpm, dnf,
	// yum, microdnf, pip and pip3, in any bin directory.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.all(p, !p.contains('/') || p.matches('^/(usr/(local/)?)?s?bin/[^/]+$'))",message="packageManagers are command names or paths directly under /bin, /sbin, /usr/bin, /usr/sbin, /usr/local/bin or /usr/local/sbin"
	PackageManagers []string `json:"packageManagers,omitempty"`

	// maxCompressedSize refuses an image whose layers, compressed as the
	// manifest lists them, add up to more than this, e.g. "200Mi"; checked
	// per platform. Exception id: maxCompressedSize.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(self).isGreaterThan(quantity('0'))",message="maxCompressedSize must be positive"
	MaxCompressedSize *resource.Quantity `json:"maxCompressedSize,omitempty"`

	// requiredAnnotations are annotation keys that must be set, not
	// empty, on the index or on every scanned platform's manifest, e.g.
	// org.opencontainers.image.source. Exception id:
	// requiredAnnotations:<key>.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	RequiredAnnotations []string `json:"requiredAnnotations,omitempty"`
}

// ShellsOrDefault returns shells, or DefaultShells when unset.
func (h *HardeningPolicy) ShellsOrDefault() []string {
	if h == nil || len(h.Shells) == 0 {
		return DefaultShells
	}
	return h.Shells
}

// PackageManagersOrDefault returns packageManagers, or
// DefaultPackageManagers when unset.
func (h *HardeningPolicy) PackageManagersOrDefault() []string {
	if h == nil || len(h.PackageManagers) == 0 {
		return DefaultPackageManagers
	}
	return h.PackageManagers
}

// MaxHardeningFindings is the most finding ids HardeningStatus lists.
const MaxHardeningFindings = 10

// HardeningStatus counts the hardening and secret findings of the scanned
// digest. It never holds a secret: only rules, paths and layers.
type HardeningStatus struct {
	// violations are hardening findings that block approval.
	Violations int32 `json:"violations"`
	// secrets are secrets found in the layers that block approval.
	Secrets int32 `json:"secrets"`
	// excepted are findings (hardening or secret) an active exception
	// covers.
	Excepted int32 `json:"excepted"`
	// secretsSkipped counts the files the secret scanner did not read for
	// their size.
	// +optional
	SecretsSkipped int32 `json:"secretsSkipped,omitempty"`
	// findings lists the ids of the first blocking findings, as an
	// exception names them, e.g. forbidSetuid:/usr/bin/passwd or
	// aws-access-key-id:/etc/app.env.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=512
	Findings []string `json:"findings,omitempty"`
}
