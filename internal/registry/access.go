package registry

import (
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Access is how plinth reaches one image's registry. The zero value means
// anonymous access over HTTPS trusting the system's certificate
// authorities.
type Access struct {
	// Keychain resolves credentials; nil means anonymous.
	Keychain authn.Keychain
	// CAPEM is a PEM bundle of certificate authorities trusted for TLS to
	// the registry, in addition to the system's; empty means the system's only.
	CAPEM []byte
	// Insecure allows plain HTTP to the registry (TLS is tried first), like
	// Flux's ImageRepository spec.insecure.
	Insecure bool
}

// Reference parses s as a tag or digest reference, the way Head, Inspect
// and Transport's users must see it: with a.Insecure, the registry is marked
// insecure (name.Insecure), so that go-containerregistry falls back to plain
// HTTP when HTTPS fails. References derived from the result (its Context(),
// Context().Digest(…)) keep that mark.
//
// go-containerregistry already allows the plain-HTTP fallback, whatever
// Insecure says, for localhost, *.localhost, loopback addresses and RFC 1918
// private addresses.
func (a Access) Reference(s string) (name.Reference, error) {
	if a.Insecure {
		return name.ParseReference(s, name.Insecure)
	}
	return name.ParseReference(s)
}

// reference returns ref, rebuilt with name.Insecure when a.Insecure.
func (a Access) reference(ref name.Reference) (name.Reference, error) {
	if !a.Insecure {
		return ref, nil
	}
	if d, ok := ref.(name.Digest); ok {
		return a.digest(d)
	}
	r, err := name.ParseReference(ref.Name(), name.Insecure)
	if err != nil {
		return nil, invalid("invalid image reference", err)
	}
	return r, nil
}

// digest returns d, rebuilt with name.Insecure when a.Insecure.
func (a Access) digest(d name.Digest) (name.Digest, error) {
	if !a.Insecure {
		return d, nil
	}
	r, err := name.NewDigest(d.Name(), name.Insecure)
	if err != nil {
		return name.Digest{}, invalid("invalid image reference", err)
	}
	return r, nil
}
