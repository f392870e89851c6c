package sign

import (
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Trust is what a publisher's signature must satisfy. A signature verifies
// when it was made by one of Keys, or when its certificate chains to a
// certificate authority of TrustedRoot and names one of Identities.
type Trust struct {
	// Keys are PEM public keys (ECDSA, RSA or Ed25519, as cosign accepts);
	// a signature by any one of them verifies.
	Keys [][]byte
	// Identities are the keyless signers trusted: a signature whose
	// certificate matches any one of them verifies. Each needs TrustedRoot.
	Identities []Identity
	// TrustedRoot is a Sigstore trusted_root.json: the certificate
	// authorities keyless certificates must chain to, and the transparency
	// and certificate-transparency logs whose entries are checked. Verify
	// never downloads one: nil means there is no root, which is enough for
	// Keys with IgnoreTlog but an ErrNoTrustedRoot otherwise.
	TrustedRoot []byte
	// IgnoreTlog does not require a transparency-log entry (a Rekor bundle)
	// on the signature. When false, the entry is checked offline against
	// the logs of TrustedRoot.
	IgnoreTlog bool
	// IgnoreSCT does not require a signed certificate timestamp in a keyless
	// certificate. When false, it is checked offline against the
	// certificate-transparency logs of TrustedRoot.
	IgnoreSCT bool
}

// Identity is a keyless signer: the OIDC issuer recorded in its
// certificate and the subject (the certificate's email, URI or other
// subject alternative name). Exactly one of Issuer and IssuerRegExp, and
// exactly one of Subject and SubjectRegExp, must be set. Regular
// expressions use Go syntax and are not anchored, as in cosign.
type Identity struct {
	Issuer, IssuerRegExp, Subject, SubjectRegExp string
}

// String names the identity for messages, such as
// "ci@example.com from https://issuer.example".
func (i Identity) String() string {
	subject := i.Subject
	if i.SubjectRegExp != "" {
		subject = "/" + i.SubjectRegExp + "/"
	}
	issuer := i.Issuer
	if i.IssuerRegExp != "" {
		issuer = "/" + i.IssuerRegExp + "/"
	}
	return subject + " from " + issuer
}

// ErrInvalidTrust is wrapped by every error about a Trust that cannot be
// used as given: someone must change it; retrying does not help.
var ErrInvalidTrust = errors.New("invalid signature trust")

// ErrNoTrustedRoot is the ErrInvalidTrust returned when a Trust needs a
// trusted root (keyless identities, or transparency-log entries) and has
// none. Verify does not fetch the public Sigstore root.
var ErrNoTrustedRoot = fmt.Errorf("%w: no trusted root configured", ErrInvalidTrust)

// Hash returns a stable digest of the trust configuration, such as
// "sha256:…". Equal configurations hash equally whatever the order of keys
// and identities and however the PEM keys are laid out; any change that
// can change a verdict changes the hash. It is part of Verify's cache key.
func (t Trust) Hash() string {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	keys := make([]string, 0, len(t.Keys))
	for _, k := range t.Keys {
		// The DER of the key, not its PEM layout; not parsed, as Hash is
		// on the path of every cached verdict.
		if block, _ := pem.Decode(k); block != nil {
			sum := sha256.Sum256(block.Bytes)
			keys = append(keys, "der:"+hex.EncodeToString(sum[:]))
		} else {
			sum := sha256.Sum256(k)
			keys = append(keys, "raw:"+hex.EncodeToString(sum[:]))
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	ids := make([]string, 0, len(t.Identities))
	for _, i := range t.Identities {
		ids = append(ids, hashFields(i.Issuer, i.IssuerRegExp, i.Subject, i.SubjectRegExp))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	field("plinth.sign.Trust/v1")
	field(fmt.Sprint(len(keys)))
	for _, k := range keys {
		field(k)
	}
	field(fmt.Sprint(len(ids)))
	for _, i := range ids {
		field(i)
	}
	if t.TrustedRoot == nil {
		field("root:none")
	} else {
		sum := sha256.Sum256(t.TrustedRoot)
		field("root:" + hex.EncodeToString(sum[:]))
	}
	field(fmt.Sprint(t.IgnoreTlog, t.IgnoreSCT))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func hashFields(fields ...string) string {
	h := sha256.New()
	for _, f := range fields {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Validate reports whether t can be used, without any network access. Its
// errors wrap ErrInvalidTrust and have stable messages.
func (t Trust) Validate() error {
	_, err := t.compile()
	return err
}

// trustedKey is one of Trust.Keys, ready to verify.
type trustedKey struct {
	fingerprint string
	verifier    signature.Verifier
}

// compiledTrust is a validated Trust in the form cosign's checks take.
type compiledTrust struct {
	keys       []trustedKey
	identities []cosign.Identity
	names      []string // Identity.String of each identity
	material   root.TrustedMaterial
	ignoreTlog bool
	ignoreSCT  bool
}

func invalidTrust(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidTrust, fmt.Sprintf(format, args...))
}

func (t Trust) compile() (*compiledTrust, error) {
	if len(t.Keys) == 0 && len(t.Identities) == 0 {
		return nil, invalidTrust("no trusted keys or identities")
	}
	c := &compiledTrust{ignoreTlog: t.IgnoreTlog, ignoreSCT: t.IgnoreSCT}
	seen := map[string]bool{}
	for i, k := range t.Keys {
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(k)
		if err != nil {
			return nil, invalidTrust("trusted key %d is not a PEM public key", i+1)
		}
		fp, err := Fingerprint(pub)
		if err != nil {
			return nil, invalidTrust("trusted key %d is not a supported public key", i+1)
		}
		if seen[fp] {
			continue
		}
		seen[fp] = true
		// What cosign's signature.LoadPublicKeyRaw does for --key.
		v, err := signature.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			return nil, invalidTrust("trusted key %s is not a supported public key", fp)
		}
		c.keys = append(c.keys, trustedKey{fingerprint: fp, verifier: v})
	}
	for i, id := range t.Identities {
		if err := id.validate(); err != nil {
			return nil, invalidTrust("trusted identity %d: %s", i+1, err)
		}
		c.identities = append(c.identities, cosign.Identity{
			Issuer: id.Issuer, IssuerRegExp: id.IssuerRegExp,
			Subject: id.Subject, SubjectRegExp: id.SubjectRegExp,
		})
		c.names = append(c.names, id.String())
	}
	if t.TrustedRoot != nil {
		tr, err := root.NewTrustedRootFromJSON(t.TrustedRoot)
		if err != nil {
			return nil, invalidTrust("the trusted root is not a Sigstore trusted_root.json")
		}
		c.material = tr
	}
	if c.material == nil {
		if len(t.Identities) > 0 {
			return nil, fmt.Errorf("%w: keyless identities need one", ErrNoTrustedRoot)
		}
		if !t.IgnoreTlog {
			return nil, fmt.Errorf("%w: checking transparency-log entries needs one (or ignore the transparency log)", ErrNoTrustedRoot)
		}
	}
	return c, nil
}

func (i Identity) validate() error {
	switch {
	case i.Issuer != "" && i.IssuerRegExp != "":
		return errors.New("set issuer or issuerRegExp, not both")
	case i.Issuer == "" && i.IssuerRegExp == "":
		return errors.New("an issuer or issuerRegExp is required")
	case i.Subject != "" && i.SubjectRegExp != "":
		return errors.New("set subject or subjectRegExp, not both")
	case i.Subject == "" && i.SubjectRegExp == "":
		return errors.New("a subject or subjectRegExp is required")
	}
	for _, re := range []string{i.IssuerRegExp, i.SubjectRegExp} {
		if re == "" {
			continue
		}
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("invalid regular expression %q", strings.TrimSpace(re))
		}
	}
	return nil
}
