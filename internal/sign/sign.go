package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/plinth-dev/plinth/internal/registry"
)

// Publication is what Publish attaches to an approved digest.
type Publication struct {
	// Approval is plinth's verdict, attested with PredicateTypeApproval.
	Approval Approval
	// Scanner names the scanner and DB behind Findings.
	Scanner Scanner
	// Findings are the vulnerabilities found in the digest, attested with
	// cosign's vuln predicate (PredicateTypeVuln). Order does not matter.
	Findings []Finding
	// ScannedAt is when the scan behind Findings ran; it is recorded as the
	// predicate's scan start and finish. Keep it unchanged while the
	// findings come from the same scan, or every Publish rewrites the
	// attestation.
	ScannedAt time.Time
	// SBOM is the digest's CycloneDX SBOM in JSON, attested with
	// PredicateTypeCycloneDX.
	SBOM []byte
	// SignatureRepository, when set, stores the signature and attestations
	// in this repository ("registry/path", reached with the same Registry)
	// instead of next to the image, as cosign's COSIGN_REPOSITORY does;
	// readers must be told the same repository. The process environment's
	// COSIGN_REPOSITORY is never read.
	SignatureRepository string
	// TransparencyLog, when set, is the URL of a Rekor server to which the
	// signature and each attestation are uploaded before they are pushed;
	// each then carries the log's bundle (signed entry timestamp), which
	// verifiers check offline against the log's key. A signature or
	// attestation without a bundle is then replaced.
	TransparencyLog string
}

// Published says where Publish put its signature and attestations.
type Published struct {
	// Changed is false when everything was already in place and Publish
	// pushed nothing.
	Changed bool
	// Signature is the signature image's reference, repo:sha256-<hex>.sig.
	Signature string
	// Attestations is the attestation image's reference,
	// repo:sha256-<hex>.att.
	Attestations string
	// KeyFingerprint identifies the key that signed (Key.Fingerprint).
	KeyFingerprint string
	// SignatureAdded is true when a new signature was pushed.
	SignatureAdded bool
	// AttestationsWritten lists the predicate types whose attestation was
	// written (added or replaced), in the order Approval, vuln, CycloneDX.
	AttestationsWritten []string
}

// ErrInvalidPublication is wrapped by the errors of Publish about its
// input (a missing key, a bad SBOM, an approval for another digest):
// retrying with the same input cannot succeed.
var ErrInvalidPublication = errors.New("invalid publication")

// Signer signs approved digests and attaches plinth's attestations in
// cosign's layout. The zero Signer is ready to use; it is safe for
// concurrent use. It remembers which attestation layers (by content
// digest) it has checked, so that re-publishing unchanged attestations
// reads only the manifests.
type Signer struct {
	mu       sync.Mutex
	verified map[v1.Hash]string // attestation layer digest -> key fingerprint + " " + sha256 of its payload

	// publishing serializes the publications to one signature tag: many
	// catalog entries may name the same digest, and two publications that
	// both found no signature would both add one.
	publishing keyedMutex
}

// keyedMutex is a set of mutexes by key; the zero value is ready to use.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// verifiedCacheSize bounds Signer's memory of checked layers; the whole
// map is dropped when it is full (a dropped entry costs one blob read).
const verifiedCacheSize = 8192

// Publish signs image with key and attaches the approval, vulnerability
// and SBOM attestations of p, in cosign's formats: a simple-signing
// signature in the .sig image (no transparency-log upload) and in-toto
// statements in DSSE envelopes in the .att image, which "cosign verify
// --key" and "cosign verify-attestation --key" read.
//
// It is idempotent and writes only what changed:
//   - a signature is added only when none by key over the same payload
//     exists (another key's signatures, such as before a key rotation,
//     stay);
//   - an attestation replaces every existing attestation of its predicate
//     type (cosign attest --replace), unless exactly one exists whose
//     statement is byte-identical to the new one and which key signed;
//   - when nothing changed, nothing is pushed and Changed is false.
//
// Registry failures are *registry.Error values (see registry.KindOf) with
// stable messages and no URLs; input errors wrap ErrInvalidPublication.
func (s *Signer) Publish(ctx context.Context, image name.Digest, key *Key, p Publication, reg Registry) (Published, error) {
	if key == nil {
		return Published{}, fmt.Errorf("%w: no signing key", ErrInvalidPublication)
	}
	want, err := attestationsFor(image, p)
	if err != nil {
		return Published{}, err
	}
	opts, err := ociOptions(ctx, image, reg, p.SignatureRepository)
	if err != nil {
		return Published{}, err
	}
	sigTag, err := ociremote.SignatureTag(image, opts...)
	if err != nil {
		return Published{}, fmt.Errorf("%w: %v", ErrInvalidPublication, err)
	}
	attTag, err := ociremote.AttestationTag(image, opts...)
	if err != nil {
		return Published{}, fmt.Errorf("%w: %v", ErrInvalidPublication, err)
	}
	tl, err := newTransparencyLog(p.TransparencyLog, key)
	if err != nil {
		return Published{}, err
	}
	out := Published{Signature: sigTag.String(), Attestations: attTag.String(), KeyFingerprint: key.Fingerprint()}
	defer s.publishing.lock(sigTag.String())()

	se := ociremote.SignedUnknown(image, opts...)

	// The signature.
	sigPayload, err := payload.Cosign{Image: image}.MarshalJSON()
	if err != nil {
		return Published{}, fmt.Errorf("encoding the signature payload: %w", err)
	}
	has, err := hasSignature(se, key, sigPayload, tl != nil)
	if err != nil {
		return Published{}, fmt.Errorf("reading signatures: %w", registry.Classify(err))
	}
	if !has {
		raw, err := key.sv.SignMessage(bytes.NewReader(sigPayload))
		if err != nil {
			return Published{}, fmt.Errorf("signing: %w", err)
		}
		var sigOpts []static.Option
		if tl != nil {
			logged, err := tl.signature(ctx, raw, sigPayload)
			if err != nil {
				return Published{}, err
			}
			sigOpts = append(sigOpts, logged)
		}
		sig, err := static.NewSignature(sigPayload, base64.StdEncoding.EncodeToString(raw), sigOpts...)
		if err != nil {
			return Published{}, fmt.Errorf("signing: %w", err)
		}
		signed, err := mutate.AttachSignatureToEntity(se, sig)
		if err != nil {
			return Published{}, fmt.Errorf("signing: %w", err)
		}
		if err := ociremote.WriteSignatures(image.Repository, signed, opts...); err != nil {
			return Published{}, fmt.Errorf("pushing the signature: %w", registry.Classify(err))
		}
		out.SignatureAdded = true
	}

	// The attestations.
	atts, written, err := s.attest(ctx, se, key, want, tl)
	if err != nil {
		return Published{}, err
	}
	if len(written) > 0 {
		if err := ociremote.WriteAttestations(image.Repository, withAttestations{se, atts}, opts...); err != nil {
			return Published{}, fmt.Errorf("pushing the attestations: %w", registry.Classify(err))
		}
		out.AttestationsWritten = written
	}
	out.Changed = out.SignatureAdded || len(written) > 0
	return out, nil
}

// ociOptions turns reg into cosign's options. One pusher and one puller
// serve the whole Publish, so that the registry is pinged and
// authenticated once rather than per request.
func ociOptions(ctx context.Context, image name.Digest, reg Registry, sigRepo string) ([]ociremote.Option, error) {
	ropts := []remote.Option{remote.WithContext(ctx)}
	if reg.Transport != nil {
		ropts = append(ropts, remote.WithTransport(reg.Transport))
	}
	if reg.Keychain != nil {
		ropts = append(ropts, remote.WithAuthFromKeychain(reg.Keychain))
	} else {
		ropts = append(ropts, remote.WithAuth(authn.Anonymous))
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, fmt.Errorf("%w: registry options: %v", ErrInvalidPublication, err)
	}
	pusher, err := remote.NewPusher(ropts...)
	if err != nil {
		return nil, fmt.Errorf("%w: registry options: %v", ErrInvalidPublication, err)
	}
	ropts = append(ropts, remote.Reuse(puller), remote.Reuse(pusher))
	target := image.Repository
	if sigRepo != "" {
		var nopts []name.Option
		if image.Registry.Scheme() == "http" {
			nopts = append(nopts, name.Insecure)
		}
		target, err = name.NewRepository(sigRepo, nopts...)
		if err != nil {
			return nil, fmt.Errorf("%w: the signature repository is not a repository name", ErrInvalidPublication)
		}
	}
	return []ociremote.Option{ociremote.WithRemoteOptions(ropts...), ociremote.WithTargetRepository(target)}, nil
}

// hasSignature reports whether se carries a signature by key over
// sigPayload, with a transparency-log bundle when requireLog is set. The
// simple-signing payload is deterministic, so its layer digest finds it in
// the manifest without reading any blob.
func hasSignature(se oci.SignedEntity, key *Key, sigPayload []byte, requireLog bool) (bool, error) {
	sigs, err := se.Signatures()
	if err != nil {
		return false, err
	}
	list, err := sigs.Get()
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(sigPayload)
	want := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	for _, sig := range list {
		d, err := sig.Digest()
		if err != nil || d != want || (requireLog && !logged(sig)) {
			continue
		}
		b64, err := sig.Base64Signature()
		if err != nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		if key.sv.VerifySignature(bytes.NewReader(raw), bytes.NewReader(sigPayload)) == nil {
			return true, nil
		}
	}
	return false, nil
}

// withAttestations is se with another list of attestations, for writing.
type withAttestations struct {
	oci.SignedEntity
	atts oci.Signatures
}

func (w withAttestations) Attestations() (oci.Signatures, error) { return w.atts, nil }

// remember records that the attestation layer d holds a statement with the
// given payload digest, signed by the key with fingerprint fp.
func (s *Signer) remember(d v1.Hash, fp string, payloadSum string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verified == nil || len(s.verified) >= verifiedCacheSize {
		s.verified = map[v1.Hash]string{}
	}
	s.verified[d] = fp + " " + payloadSum
}

func (s *Signer) known(d v1.Hash, fp string, payloadSum string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verified[d] == fp+" "+payloadSum
}

// validJSON reports whether b is one JSON value.
func validJSON(b []byte) bool { return json.Valid(b) }
