package registry

import (
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// IsAttestation reports whether an index entry is an attestation manifest
// (as BuildKit writes them) rather than a platform's image.
func IsAttestation(d v1.Descriptor) bool {
	if d.Annotations[AnnotationReferenceType] == "attestation-manifest" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

// PlatformString writes os/arch[/variant]; arm64's default variant v8 is
// left out, as container runtimes do. It returns "" without os or arch.
func PlatformString(os, arch, variant string) string {
	if os == "" || arch == "" {
		return ""
	}
	s := os + "/" + arch
	if variant != "" && !(arch == "arm64" && variant == "v8") {
		s += "/" + variant
	}
	return s
}

// ParsePlatforms validates a platform filter (os/arch[/variant] entries)
// and returns it normalized, sorted and without duplicates.
func ParsePlatforms(platforms []string) ([]string, error) {
	var out []string
	for _, p := range platforms {
		parts := strings.Split(strings.ToLower(strings.TrimSpace(p)), "/")
		if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
			return nil, fmt.Errorf("invalid platform %q: want os/arch[/variant]", truncate(p, 64))
		}
		variant := ""
		if len(parts) == 3 {
			variant = parts[2]
		}
		out = append(out, PlatformString(parts[0], parts[1], variant))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// PlatformMatches reports whether platform equals an entry of filter, or
// an entry without variant matches its os/arch.
func PlatformMatches(filter []string, platform string) bool {
	for _, f := range filter {
		if f == platform || (strings.Count(f, "/") == 1 && strings.HasPrefix(platform, f+"/")) {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
