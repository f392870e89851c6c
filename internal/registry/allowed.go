package registry

import (
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// RegistryOf returns the registry host of ref as users write it, with its
// port if any; Docker Hub is "docker.io".
func RegistryOf(ref name.Reference) string {
	h := ref.Context().RegistryStr()
	if h == dockerHub {
		return "docker.io"
	}
	return h
}

// AllowedBy reports whether ref matches one of patterns. Patterns use
// path.Match syntax. A pattern without '/' matches the registry host with its
// port ("registry.example.com", "*.example.com", "127.0.0.1:*"); a pattern
// with '/' matches "host/repository" ("docker.io/library/*"). Docker Hub is
// written docker.io ("index.docker.io" in a pattern means the same). No
// patterns allow everything. A malformed pattern is an error.
func AllowedBy(patterns []string, ref name.Reference) (bool, error) {
	if len(patterns) == 0 {
		return true, nil
	}
	host := RegistryOf(ref)
	full := host + "/" + ref.Context().RepositoryStr()
	allowed := false
	for _, p := range patterns {
		if p == "" {
			return false, fmt.Errorf("empty registry pattern")
		}
		if rest, ok := strings.CutPrefix(p, "index.docker.io"); ok && (rest == "" || rest[0] == '/') {
			p = "docker.io" + rest
		}
		subject := host
		if strings.Contains(p, "/") {
			subject = full
		}
		ok, err := path.Match(p, subject)
		if err != nil {
			return false, fmt.Errorf("registry pattern %q: %w", p, err)
		}
		allowed = allowed || ok
	}
	return allowed, nil
}
