package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// ErrInvalidPullSecret is wrapped by errors about pull Secrets that cannot be
// used: wrong type, missing key, malformed JSON or base64.
var ErrInvalidPullSecret = errors.New("invalid pull secret")

// dockerHub is the registry host go-containerregistry uses for Docker Hub.
const dockerHub = name.DefaultRegistry

// KeychainFromPullSecrets builds a keychain from kubernetes.io/dockerconfigjson
// and kubernetes.io/dockercfg Secrets with the rules of a Pod's
// imagePullSecrets: an entry matches by registry host (a leading "*." matches
// one subdomain level, a path after the host must prefix the repository), the
// most specific matching entry wins, and earlier Secrets win over later ones.
// The Docker Hub spellings docker.io, index.docker.io and
// https://index.docker.io/v1/ are equivalent. With no Secrets, or no
// matching entry, access is anonymous.
//
// An unusable Secret yields an error wrapping ErrInvalidPullSecret that names
// the Secret but never its content.
func KeychainFromPullSecrets(secrets []corev1.Secret) (authn.Keychain, error) {
	kc := &pullSecretKeychain{}
	for i := range secrets {
		entries, err := parsePullSecret(&secrets[i])
		if err != nil {
			return nil, err
		}
		sort.SliceStable(entries, func(a, b int) bool { return entries[a].specificity() > entries[b].specificity() })
		kc.entries = append(kc.entries, entries...)
	}
	return kc, nil
}

type pullSecretKeychain struct {
	// entries in lookup order: by Secret, then most specific first.
	entries []credentialEntry
}

type credentialEntry struct {
	host string // normalised, may start with "*."
	path string // repository prefix, may be empty
	auth authn.AuthConfig
}

func (e credentialEntry) specificity() int { return len(e.host) + len(e.path) }

// Resolve implements authn.Keychain.
func (k *pullSecretKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	host := normalizeHost(target.RegistryStr())
	repo := ""
	if r, ok := target.(name.Repository); ok {
		repo = r.RepositoryStr()
	}
	for _, e := range k.entries {
		if !hostMatches(e.host, host) {
			continue
		}
		if e.path != "" && repo != e.path && !strings.HasPrefix(repo, e.path+"/") {
			continue
		}
		return authn.FromConfig(e.auth), nil
	}
	return authn.Anonymous, nil
}

func hostMatches(pattern, host string) bool {
	if pattern == host {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*")
	if !ok || !strings.HasPrefix(suffix, ".") {
		return false
	}
	sub, ok := strings.CutSuffix(host, suffix)
	return ok && sub != "" && !strings.Contains(sub, ".")
}

// normalizeHost maps Docker Hub's spellings to one and lower-cases the host.
func normalizeHost(h string) string {
	h = strings.ToLower(h)
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return dockerHub
	}
	return h
}

// parseKey splits a config key such as "https://index.docker.io/v1/" or
// "registry.example.com:5000/team" into host and repository prefix.
func parseKey(key string) (host, repoPath string) {
	k := strings.TrimSpace(key)
	if i := strings.Index(k, "://"); i >= 0 {
		k = k[i+3:]
	}
	k = strings.TrimSuffix(k, "/")
	host, repoPath, _ = strings.Cut(k, "/")
	host = normalizeHost(host)
	if host == dockerHub && (repoPath == "v1" || repoPath == "v2") {
		repoPath = ""
	}
	return host, repoPath
}

type dockerConfigEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

func parsePullSecret(s *corev1.Secret) ([]credentialEntry, error) {
	id := s.Name
	if s.Namespace != "" {
		id = s.Namespace + "/" + s.Name
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: secret %s %s", ErrInvalidPullSecret, id, fmt.Sprintf(format, a...))
	}

	var auths map[string]dockerConfigEntry
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		raw, ok := s.Data[corev1.DockerConfigJsonKey]
		if !ok {
			return nil, bad("has no key %s", corev1.DockerConfigJsonKey)
		}
		var cfg struct {
			Auths map[string]dockerConfigEntry `json:"auths"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, bad("key %s is not valid JSON", corev1.DockerConfigJsonKey)
		}
		auths = cfg.Auths
	case corev1.SecretTypeDockercfg:
		raw, ok := s.Data[corev1.DockerConfigKey]
		if !ok {
			return nil, bad("has no key %s", corev1.DockerConfigKey)
		}
		if err := json.Unmarshal(raw, &auths); err != nil {
			return nil, bad("key %s is not valid JSON", corev1.DockerConfigKey)
		}
	default:
		return nil, bad("has type %q, want %s or %s", s.Type, corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)
	}

	keys := make([]string, 0, len(auths))
	for k := range auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	entries := make([]credentialEntry, 0, len(keys))
	for _, k := range keys {
		e := auths[k]
		host, repoPath := parseKey(k)
		if host == "" {
			return nil, bad("has an entry with an empty registry")
		}
		cfg := authn.AuthConfig{
			Username:      e.Username,
			Password:      e.Password,
			IdentityToken: e.IdentityToken,
			RegistryToken: e.RegistryToken,
		}
		if e.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Auth))
			if err != nil {
				return nil, bad("has an auth field for %s that is not valid base64", host)
			}
			user, pass, ok := strings.Cut(string(dec), ":")
			if !ok {
				return nil, bad("has an auth field for %s that is not user:password", host)
			}
			cfg.Username, cfg.Password = user, pass
		}
		entries = append(entries, credentialEntry{host: host, path: repoPath, auth: cfg})
	}
	return entries, nil
}
