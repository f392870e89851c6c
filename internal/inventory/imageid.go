package inventory

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// DigestFromImageID returns the manifest digest in a container status's
// imageID, or "" when it holds none. Runtimes write it as
// docker-pullable://repo@sha256:…, docker://repo@sha256:… or repo@sha256:…;
// a bare sha256:… (with or without a scheme) is the image's configuration
// id under some runtimes, not a manifest digest, and is not taken for one.
func DigestFromImageID(imageID string) string {
	s := strings.TrimSpace(imageID)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	i := strings.LastIndexByte(s, '@')
	if i <= 0 {
		return ""
	}
	d := s[i+1:]
	if _, err := name.NewDigest("example.invalid/x@"+d, name.StrictValidation); err != nil {
		return ""
	}
	return d
}
