package registry

import (
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/net/publicsuffix"
)

// errCrossSiteCredentials is the cause of a refused token realm.
var errCrossSiteCredentials = errors.New("registry credentials would go to another site")

// ScopeCredentials returns a transport that refuses to send Basic
// credentials to any host but reg's own site, before any byte leaves.
//
// go-containerregistry sends a registry's Basic credentials to the token
// realm its Bearer challenge names, wherever that is, unless the realm is
// a private, loopback or link-local IP address on another port. A realm
// on the registry's own host, or on another host of the same registrable
// domain (registry-1.docker.io and auth.docker.io share docker.io), is how
// registries work; a realm anywhere else would collect the credentials of
// whoever the registry sends there, so it is refused. Bearer tokens, which
// the token server issued for its registry, are not concerned. Requests go
// through next unchanged otherwise.
func ScopeCredentials(next http.RoundTripper, reg name.Registry) http.RoundTripper {
	return &credentialScope{next: next, registry: reg.RegistryStr()}
}

type credentialScope struct {
	next     http.RoundTripper
	registry string
}

// RoundTrip implements http.RoundTripper.
func (c *credentialScope) RoundTrip(req *http.Request) (*http.Response, error) {
	if auth := req.Header.Get("Authorization"); len(auth) > 6 && strings.EqualFold(auth[:6], "basic ") &&
		!sameSite(c.registry, req.URL.Host) {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, &Error{Kind: KindUnauthorized,
			Message: "registry authentication failed: token realm refused: it is on another site than the registry",
			Err:     errCrossSiteCredentials}
	}
	return c.next.RoundTrip(req)
}

// sameSite tells whether credentials for registry (host[:port]) may go to
// host: the same host and port, or, for DNS names, hosts of the same
// registrable domain (public suffix plus one label). IP addresses and
// single-label names such as localhost must match exactly.
func sameSite(registry, host string) bool {
	if strings.EqualFold(registry, host) {
		return true
	}
	a, b := hostname(registry), hostname(host)
	if net.ParseIP(a) != nil || net.ParseIP(b) != nil {
		return false
	}
	da, errA := publicsuffix.EffectiveTLDPlusOne(a)
	db, errB := publicsuffix.EffectiveTLDPlusOne(b)
	return errA == nil && errB == nil && da == db
}

func hostname(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.Trim(h, "[]."))
}
