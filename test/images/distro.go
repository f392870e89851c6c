package imagetest

import (
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Package is an installed OS package.
type Package struct {
	// Name is the package name, such as "musl" or "libc6".
	Name string
	// Version is the full package version, such as "1.2.5-r10".
	Version string
	// Source is the source package; empty means the same as Name.
	Source string
}

// DistroOptions describes an Alpine-like or Debian-like image.
type DistroOptions struct {
	// Packages are recorded in the package database.
	Packages []Package
	// Created is the image creation time.
	Created time.Time
	// Architecture defaults to "amd64".
	Architecture string
	// Annotations are written to the image manifest.
	Annotations map[string]string
	// ExtraFiles are added to the image next to the distribution files.
	ExtraFiles map[string]string
}

// AlpineOSRelease is /etc/os-release of Alpine Linux 3.22.
const AlpineOSRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.22.1
PRETTY_NAME="Alpine Linux v3.22"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`

// DebianOSRelease is /etc/os-release of Debian 12 (bookworm).
const DebianOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`

// AlpineImage builds an image that looks like Alpine Linux 3.22 with pkgs
// recorded in /lib/apk/db/installed.
func AlpineImage(o DistroOptions) (v1.Image, error) {
	arch := archOrDefault(o.Architecture)
	apkArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "x86", "arm": "armv7"}[arch]
	if apkArch == "" {
		apkArch = arch
	}
	var db strings.Builder
	for _, p := range sortedPackages(o.Packages) {
		fmt.Fprintf(&db, "P:%s\nV:%s\nA:%s\no:%s\nL:MIT\nT:%s package\n\n", p.Name, p.Version, apkArch, sourceOf(p), p.Name)
	}
	files := map[string]string{
		"/etc/os-release":       AlpineOSRelease,
		"/etc/alpine-release":   "3.22.1\n",
		"/lib/apk/db/installed": db.String(),
	}
	return distroImage(files, arch, o)
}

// DebianImage builds an image that looks like Debian 12 (bookworm) with pkgs
// recorded in /var/lib/dpkg/status.
func DebianImage(o DistroOptions) (v1.Image, error) {
	arch := archOrDefault(o.Architecture)
	var db strings.Builder
	for _, p := range sortedPackages(o.Packages) {
		fmt.Fprintf(&db, "Package: %s\nStatus: install ok installed\nPriority: optional\nArchitecture: %s\n", p.Name, arch)
		if p.Source != "" && p.Source != p.Name {
			fmt.Fprintf(&db, "Source: %s\n", p.Source)
		}
		fmt.Fprintf(&db, "Version: %s\nDescription: %s package\n\n", p.Version, p.Name)
	}
	files := map[string]string{
		"/etc/os-release":      DebianOSRelease,
		"/etc/debian_version":  "12.11\n",
		"/var/lib/dpkg/status": db.String(),
	}
	return distroImage(files, arch, o)
}

func distroImage(files map[string]string, arch string, o DistroOptions) (v1.Image, error) {
	for p, c := range o.ExtraFiles {
		files[p] = c
	}
	return Image(ImageOptions{
		Files:        files,
		Created:      o.Created,
		Architecture: arch,
		Annotations:  o.Annotations,
	})
}

func archOrDefault(a string) string {
	if a == "" {
		return "amd64"
	}
	return a
}

func sourceOf(p Package) string {
	if p.Source != "" {
		return p.Source
	}
	return p.Name
}

func sortedPackages(pkgs []Package) []Package {
	out := append([]Package(nil), pkgs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
