package sign

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"golang.org/x/sync/singleflight"
)

// Outcome is the verdict on an image's publisher signatures. The values are
// the reasons of the Verified condition.
type Outcome string

const (
	// OutcomeVerified: a signature on the image verifies with a trusted key
	// or was made by a trusted identity.
	OutcomeVerified Outcome = "Verified"
	// OutcomeSignatureMissing: the image has no cosign signature.
	OutcomeSignatureMissing Outcome = "SignatureMissing"
	// OutcomeSignatureInvalid: the image has signatures, or something in
	// their place, but none verifies with the trusted keys or chains to the
	// trusted root.
	OutcomeSignatureInvalid Outcome = "SignatureInvalid"
	// OutcomeUntrustedIdentity: a keyless signature is valid and its
	// certificate chains to the trusted root, but the identity it names is
	// not a trusted one.
	OutcomeUntrustedIdentity Outcome = "UntrustedIdentity"
)

// Result is the verdict on one image under one Trust.
type Result struct {
	// Outcome is the verdict.
	Outcome Outcome
	// Message explains the verdict in one stable sentence: the same
	// signatures under the same trust give the same message. It names key
	// fingerprints and identities, never registry addresses or credentials.
	Message string
	// Signer is the fingerprint of the key ("SHA256:…") or the keyless
	// identity ("subject from issuer") whose signature verified; empty
	// unless Outcome is OutcomeVerified.
	Signer string
}

// Registry is how Verify reaches the image's registry. The zero value is
// anonymous access through go-containerregistry's default transport.
type Registry struct {
	// Transport carries the requests, with the caller's TLS settings, size
	// limits and rate limits; nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// Keychain resolves credentials; nil means anonymous. The environment's
	// Docker configuration is never read.
	Keychain authn.Keychain
}

// VerifierOptions configures a Verifier. Zero values take the defaults.
type VerifierOptions struct {
	// CacheSize bounds the number of verdicts kept; default 4096.
	CacheSize int
	// VerifiedTTL is how long an OutcomeVerified verdict is reused without
	// reading the registry; default 12h.
	VerifiedTTL time.Duration
	// UnverifiedTTL is how long any other verdict is reused: a publisher may
	// sign an image after it was first seen; default 10m.
	UnverifiedTTL time.Duration
	// Now is the clock for cache expiry; default time.Now. (Certificate
	// expiry is checked by cosign against the wall clock.)
	Now func() time.Time
}

// Limits on what Verify reads from a registry for one image.
const (
	// maxSignatures is the most signatures (layers of the signature
	// manifest) checked; a manifest with more is SignatureInvalid.
	maxSignatures = 64
	// maxPayloadBytes bounds one signed payload. cosign's simple-signing
	// payloads are a few hundred bytes.
	maxPayloadBytes = 256 << 10
	// maxNameLen bounds a certificate identity quoted in a message.
	maxNameLen = 200
)

// Verifier checks publishers' cosign signatures on images and caches the
// verdicts. It is safe for concurrent use.
type Verifier struct {
	cache         *resultCache
	verifiedTTL   time.Duration
	unverifiedTTL time.Duration
	now           func() time.Time
	group         singleflight.Group
}

// NewVerifier returns a Verifier with an empty cache.
func NewVerifier(o VerifierOptions) *Verifier {
	v := &Verifier{
		cache:         newResultCache(verifyDefault(o.CacheSize, 4096)),
		verifiedTTL:   verifyDefault(o.VerifiedTTL, 12*time.Hour),
		unverifiedTTL: verifyDefault(o.UnverifiedTTL, 10*time.Minute),
		now:           o.Now,
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v
}

func verifyDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Verify checks the cosign signatures stored next to image (in the
// sha256-….sig tag of its repository, as cosign writes them) against t.
// The signed payload must name image's digest.
//
// Every verdict is a Result. The error is non-nil only when no verdict can
// be given: when t is unusable (the error wraps ErrInvalidTrust; someone
// must change t), or when the registry could not be read (the error wraps
// go-containerregistry's error, for the caller to classify and retry; its
// text may name the registry).
//
// Verdicts are cached per repository, digest and t.Hash(): a cached verdict
// costs no registry request. Checking needs registry reads only: keys,
// certificates, transparency-log entries and certificate timestamps are
// checked offline against t.
func (v *Verifier) Verify(ctx context.Context, image name.Digest, t Trust, reg Registry) (Result, error) {
	key := cacheKey{image: image.Name(), trust: t.Hash()}
	if r, ok := v.cache.get(key, v.now()); ok {
		return r, nil
	}
	ct, err := t.compile()
	if err != nil {
		return Result{}, err
	}
	out, err, _ := v.group.Do(key.image+"\x00"+key.trust, func() (any, error) {
		r, err := checkSignatures(ctx, image, ct, reg, v.now())
		if err != nil {
			return Result{}, err
		}
		ttl := v.unverifiedTTL
		if r.Outcome == OutcomeVerified {
			ttl = v.verifiedTTL
		}
		v.cache.put(key, r, v.now().Add(ttl))
		return r, nil
	})
	if err != nil {
		return Result{}, err
	}
	return out.(Result), nil
}

// Forget drops the cached verdicts on image, so that the next Verify reads
// its signatures again: for a user who has just signed it and asks for a
// check now.
func (v *Verifier) Forget(image name.Digest) { v.cache.forget(image.Name()) }

// checkSignatures reads image's signatures and judges them under ct.
func checkSignatures(ctx context.Context, image name.Digest, ct *compiledTrust, reg Registry, now time.Time) (Result, error) {
	h, err := v1.NewHash(image.DigestStr())
	if err != nil {
		return Result{}, fmt.Errorf("%w: invalid image digest", ErrInvalidTrust)
	}
	opts := reg.options(ctx, image.Context())
	sigTag, err := ociremote.SignatureTag(image, opts...)
	if err != nil {
		return Result{}, fmt.Errorf("naming the signature tag: %w", err)
	}
	// Signatures reads the manifest; Get parses it and reads no blob.
	sigs, err := ociremote.Signatures(sigTag, opts...)
	if err != nil {
		return unreadable(err, fetchFailure(err))
	}
	list, err := sigs.Get()
	if err != nil {
		return unreadable(err, registryFailure(err))
	}
	switch {
	case len(list) == 0:
		return Result{Outcome: OutcomeSignatureMissing, Message: "the image has no cosign signature"}, nil
	case len(list) > maxSignatures:
		return Result{
			Outcome: OutcomeSignatureInvalid,
			Message: fmt.Sprintf("the image has %d signatures, more than the %d that are checked", len(list), maxSignatures),
		}, nil
	}

	var untrusted string
	var retired *retiredAuthority
	for _, sig := range list {
		if size, err := sig.Size(); err != nil || size > maxPayloadBytes {
			continue
		}
		s, err := static.Copy(sig)
		if err != nil {
			if fetchFailure(err) {
				return Result{}, fmt.Errorf("reading a signature: %w", err)
			}
			continue
		}
		j := ct.judge(ctx, s, h)
		if j.signer != "" {
			return Result{Outcome: OutcomeVerified, Message: "signed by " + j.how + j.signer, Signer: j.signer}, nil
		}
		if untrusted == "" {
			untrusted = j.untrusted
		}
		if retired == nil {
			retired = j.retired
		}
	}
	if retired != nil {
		return retired.verdict(ct, now)
	}
	if untrusted != "" {
		return Result{
			Outcome: OutcomeUntrustedIdentity,
			Message: fmt.Sprintf("signed by %s, which is not a trusted identity (trusted: %s)", untrusted, listed(ct.names)),
		}, nil
	}
	return Result{
		Outcome: OutcomeSignatureInvalid,
		Message: fmt.Sprintf("%s found, none verifies with %s", plural(len(list), "signature"), ct.describe()),
	}, nil
}

// unreadable turns a failure to read the signature manifest into an error
// when the registry failed, or else a SignatureInvalid verdict: what the
// registry served is not a cosign signature image.
func unreadable(err error, registryFailed bool) (Result, error) {
	if registryFailed {
		return Result{}, fmt.Errorf("reading the image's signatures: %w", err)
	}
	return Result{
		Outcome: OutcomeSignatureInvalid,
		Message: "the signature manifest is not a valid cosign signature image",
	}, nil
}

// judgement is what judge found about one signature.
type judgement struct {
	// signer is set when the signature verifies, with how it was
	// recognised: "key " or "".
	signer, how string
	// untrusted is the identity of a valid keyless signature that chains
	// to the trusted root but matches no trusted identity.
	untrusted string
	// retired is set when a keyless signature by a trusted identity would
	// verify but for its certificate being issued after the validity of
	// the authority it chains to had ended.
	retired *retiredAuthority
}

// judge checks one signature (already read from the registry) with cosign.
func (ct *compiledTrust) judge(ctx context.Context, sig oci.Signature, h v1.Hash) judgement {
	for _, k := range ct.keys {
		co := ct.checkOpts()
		co.SigVerifier = k.verifier
		if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err == nil {
			return judgement{signer: k.fingerprint, how: "key "}
		}
	}
	if len(ct.identities) == 0 {
		return judgement{}
	}
	cert, err := sig.Cert()
	if err != nil || cert == nil {
		return judgement{}
	}
	co := ct.checkOpts()
	co.Identities = ct.identities
	if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err == nil {
		return judgement{signer: certIdentity(cert)}
	}
	co = ct.checkOpts() // no identity constraint: does it chain to the root?
	if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err == nil {
		return judgement{untrusted: certIdentity(cert)}
	}
	return judgement{retired: ct.retiredAuthority(ctx, sig, h, cert)}
}

// checkOpts are cosign's options for an offline check under ct: no Rekor
// or CT log is contacted; the claim in the payload must name the image.
func (ct *compiledTrust) checkOpts() *cosign.CheckOpts {
	return &cosign.CheckOpts{
		ClaimVerifier:   cosign.SimpleClaimVerifier,
		TrustedMaterial: ct.material,
		IgnoreTlog:      ct.ignoreTlog,
		IgnoreSCT:       ct.ignoreSCT,
		Offline:         true,
		MaxWorkers:      1,
	}
}

// describe names what a signature must verify with, for messages.
func (ct *compiledTrust) describe() string {
	var parts []string
	if len(ct.keys) > 0 {
		fps := make([]string, len(ct.keys))
		for i, k := range ct.keys {
			fps[i] = k.fingerprint
		}
		parts = append(parts, "the trusted keys ("+listed(fps)+")")
	}
	if len(ct.names) > 0 {
		parts = append(parts, "the trusted identities ("+listed(ct.names)+")")
	}
	return strings.Join(parts, " or ")
}

// listed joins up to three items and counts the rest.
func listed(items []string) string {
	const shown = 3
	if len(items) <= shown {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:shown], ", "), len(items)-shown)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// certIdentity names a keyless certificate's signer as "subject from
// issuer", the way Identity.String names a trusted one.
func certIdentity(cert *x509.Certificate) string {
	subject := "(no subject)"
	if sans := cryptoutils.GetSubjectAlternateNames(cert); len(sans) > 0 {
		subject = sans[0]
	}
	issuer := (&cosign.CertExtensions{Cert: cert}).GetIssuer()
	if issuer == "" {
		issuer = "(no issuer)"
	}
	return printable(subject) + " from " + printable(issuer)
}

// printable bounds s and drops characters that do not belong in a message.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > maxNameLen {
		cut := maxNameLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// options are cosign's registry options for reg: the signatures are read
// from image's own repository (whatever COSIGN_REPOSITORY says), with the
// caller's transport and credentials only.
func (reg Registry) options(ctx context.Context, repo name.Repository) []ociremote.Option {
	ro := []remote.Option{remote.WithContext(ctx)}
	if reg.Transport != nil {
		ro = append(ro, remote.WithTransport(reg.Transport))
	}
	if reg.Keychain != nil {
		ro = append(ro, remote.WithAuthFromKeychain(reg.Keychain))
	} else {
		ro = append(ro, remote.WithAuth(authn.Anonymous))
	}
	return []ociremote.Option{ociremote.WithRemoteOptions(ro...), ociremote.WithTargetRepository(repo)}
}
