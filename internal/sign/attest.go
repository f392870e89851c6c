package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/plinth-dev/plinth/internal/registry"
)

// annotationPredicateType is the layer annotation cosign writes on each
// attestation and reads to replace attestations of one predicate type.
const annotationPredicateType = "predicateType"

// wantedAttestation is one in-toto statement Publish attaches.
type wantedAttestation struct {
	predicateType string
	payload       []byte // the statement's JSON: the DSSE payload
}

// attestationsFor builds the statements of p about image, in the order
// approval, vuln, CycloneDX.
func attestationsFor(image name.Digest, p Publication) ([]wantedAttestation, error) {
	h, err := v1Hash(image)
	if err != nil {
		return nil, err
	}
	a := p.Approval
	if a.Digest == "" {
		a.Digest = image.DigestStr()
	}
	if a.Verdict == "" {
		a.Verdict = VerdictApproved
	}
	switch {
	case a.Digest != image.DigestStr():
		return nil, fmt.Errorf("%w: the approval names another digest", ErrInvalidPublication)
	case a.Verdict != VerdictApproved:
		return nil, fmt.Errorf("%w: the approval's verdict is not %q", ErrInvalidPublication, VerdictApproved)
	case a.Policy == "":
		return nil, fmt.Errorf("%w: the approval names no policy", ErrInvalidPublication)
	case a.ValidUntil.IsZero():
		return nil, fmt.Errorf("%w: the approval has no validUntil", ErrInvalidPublication)
	case len(p.SBOM) == 0 || !validJSON(p.SBOM):
		return nil, fmt.Errorf("%w: the SBOM is not JSON", ErrInvalidPublication)
	case p.Scanner.Name == "":
		return nil, fmt.Errorf("%w: no scanner name", ErrInvalidPublication)
	}
	approval, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encoding the approval: %w", err)
	}
	vuln, err := vulnPredicate(p.Scanner, p.Findings, p.ScannedAt)
	if err != nil {
		return nil, fmt.Errorf("encoding the findings: %w", err)
	}
	repo := image.Repository.String()
	var out []wantedAttestation
	for _, x := range []struct {
		typ, predicateType string
		predicate          []byte
	}{
		{PredicateTypeApproval, PredicateTypeApproval, approval},
		{"vuln", PredicateTypeVuln, vuln},
		{"cyclonedx", PredicateTypeCycloneDX, p.SBOM},
	} {
		st, err := statement(x.typ, x.predicate, repo, h)
		if err != nil {
			return nil, fmt.Errorf("%w: building the %s statement: %v", ErrInvalidPublication, x.predicateType, err)
		}
		out = append(out, wantedAttestation{predicateType: x.predicateType, payload: st})
	}
	return out, nil
}

func v1Hash(image name.Digest) (string, error) {
	d := image.DigestStr()
	if len(d) != len("sha256:")+64 || d[:7] != "sha256:" {
		return "", fmt.Errorf("%w: the image is not named by a sha256 digest", ErrInvalidPublication)
	}
	return d[7:], nil
}

// attest reads se's attestations and returns the list to write and the
// predicate types written; no types means the list is unchanged. Of each
// wanted predicate type exactly one attestation remains: the existing one
// when it is current, else a new one signed with key. Attestations of
// other predicate types are kept as they are.
func (s *Signer) attest(ctx context.Context, se oci.SignedEntity, key *Key, want []wantedAttestation, tl *transparencyLog) (oci.Signatures, []string, error) {
	atts, err := se.Attestations()
	if err != nil {
		return nil, nil, fmt.Errorf("reading attestations: %w", registry.Classify(err))
	}
	existing, err := atts.Get()
	if err != nil {
		return nil, nil, fmt.Errorf("reading attestations: %w", registry.Classify(err))
	}
	byType := map[string][]oci.Signature{}
	var others []oci.Signature
	for _, att := range existing {
		ann, err := att.Annotations()
		if err != nil {
			return nil, nil, fmt.Errorf("reading attestations: %w", registry.Classify(err))
		}
		pt := ann[annotationPredicateType]
		if !wanted(want, pt) {
			others = append(others, att)
			continue
		}
		byType[pt] = append(byType[pt], att)
	}

	var written []string
	keep := others
	for _, w := range want {
		olds := byType[w.predicateType]
		if len(olds) == 1 {
			ok, err := s.current(olds[0], key, w.payload, tl != nil)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				keep = append(keep, olds[0])
				continue
			}
		}
		att, err := s.newAttestation(ctx, key, w, tl)
		if err != nil {
			return nil, nil, err
		}
		keep = append(keep, att)
		written = append(written, w.predicateType)
	}
	if len(written) == 0 {
		return atts, nil, nil
	}
	list, err := mutate.AppendSignatures(empty.Signatures(), false, keep...)
	if err != nil {
		return nil, nil, fmt.Errorf("assembling attestations: %w", registry.Classify(err))
	}
	return list, written, nil
}

func wanted(want []wantedAttestation, predicateType string) bool {
	for _, w := range want {
		if w.predicateType == predicateType {
			return true
		}
	}
	return false
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// current reports whether att is a DSSE envelope over exactly payload,
// signed by key, and carries a transparency-log bundle when requireLog is
// set. A layer checked before is known by its content digest.
func (s *Signer) current(att oci.Signature, key *Key, payload []byte, requireLog bool) (bool, error) {
	if requireLog && !logged(att) {
		return false, nil
	}
	d, err := att.Digest()
	if err != nil {
		return false, nil
	}
	payloadSum := sum(payload)
	if s.known(d, key.Fingerprint(), payloadSum) {
		return true, nil
	}
	envelope, err := att.Payload()
	if err != nil {
		return false, fmt.Errorf("reading attestations: %w", registry.Classify(err))
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	if json.Unmarshal(envelope, &env) != nil || env.PayloadType != types.IntotoPayloadType {
		return false, nil
	}
	got, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil || !bytes.Equal(got, payload) {
		return false, nil
	}
	if dsse.WrapVerifier(key.sv).VerifySignature(bytes.NewReader(envelope), nil) != nil {
		return false, nil
	}
	s.remember(d, key.Fingerprint(), payloadSum)
	return true, nil
}

// newAttestation signs w's statement into a DSSE envelope and wraps it as
// cosign's attestation layer, uploaded to tl first when it is set.
func (s *Signer) newAttestation(ctx context.Context, key *Key, w wantedAttestation, tl *transparencyLog) (oci.Signature, error) {
	envelope, err := dsse.WrapSigner(key.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(w.payload))
	if err != nil {
		return nil, fmt.Errorf("signing the %s attestation: %w", w.predicateType, err)
	}
	opts := []static.Option{
		static.WithLayerMediaType(types.DssePayloadType),
		static.WithAnnotations(map[string]string{annotationPredicateType: w.predicateType}),
	}
	if tl != nil {
		logged, err := tl.attestation(ctx, w.predicateType, envelope)
		if err != nil {
			return nil, err
		}
		opts = append(opts, logged)
	}
	att, err := static.NewAttestation(envelope, opts...)
	if err != nil {
		return nil, fmt.Errorf("signing the %s attestation: %w", w.predicateType, err)
	}
	if d, err := att.Digest(); err == nil {
		s.remember(d, key.Fingerprint(), sum(w.payload))
	}
	return att, nil
}
