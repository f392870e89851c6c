package sign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/plinth-dev/plinth/internal/registry"
)

func TestPublishIsIdempotent(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "idempotent")
	key := testKey(t)
	var s Signer
	p := testPublication(judged.Add(24 * time.Hour))

	for i := range 10 {
		before := e.writes.Load()
		got, err := s.Publish(context.Background(), image, key, p, e.registry())
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		pushes := e.writes.Load() - before
		if i == 0 {
			if !got.Changed || !got.SignatureAdded || len(got.AttestationsWritten) != 3 || pushes == 0 {
				t.Fatalf("first publish: %+v, %d pushes; want a signature and 3 attestations pushed", got, pushes)
			}
			continue
		}
		if got.Changed || got.SignatureAdded || len(got.AttestationsWritten) != 0 || pushes != 0 {
			t.Fatalf("publish %d of unchanged input: %+v, %d PUT/POST requests; want nothing pushed", i, got, pushes)
		}
	}

	if n := e.signatures(image); n != 1 {
		t.Errorf("signatures = %d, want 1", n)
	}
	want := map[string]int{PredicateTypeApproval: 1, PredicateTypeVuln: 1, PredicateTypeCycloneDX: 1}
	if got := e.attestationTypes(image); !equalCounts(got, want) {
		t.Errorf("attestations by type = %v, want %v", got, want)
	}

	// A second Signer (a restarted controller) has no memory of the layers
	// and still pushes nothing.
	before := e.writes.Load()
	got, err := new(Signer).Publish(context.Background(), image, key, p, e.registry())
	if err != nil || got.Changed || e.writes.Load() != before {
		t.Errorf("publish by a new Signer: %+v, %v, %d pushes; want nothing pushed", got, err, e.writes.Load()-before)
	}
}

func TestPublishNamesReferencesAndKey(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "names")
	key := testKey(t)
	got, err := new(Signer).Publish(context.Background(), image, key, testPublication(judged.Add(time.Hour)), e.registry())
	if err != nil {
		t.Fatal(err)
	}
	tag := e.reg.Host + "/base/alpine:sha256-" + image.DigestStr()[len("sha256:"):]
	if got.Signature != tag+".sig" || got.Attestations != tag+".att" || got.KeyFingerprint != key.Fingerprint() {
		t.Errorf("published %+v, want %s.sig, %s.att and %s", got, tag, tag, key.Fingerprint())
	}
}

func TestPublishReplacesApprovalOnRejudge(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "rejudge")
	key := testKey(t)
	var s Signer
	first, later := judged.Add(24*time.Hour), judged.Add(48*time.Hour)
	if _, err := s.Publish(context.Background(), image, key, testPublication(first), e.registry()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Publish(context.Background(), image, key, testPublication(later), e.registry())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Changed || got.SignatureAdded || len(got.AttestationsWritten) != 1 || got.AttestationsWritten[0] != PredicateTypeApproval {
		t.Fatalf("re-judge published %+v, want only the approval attestation written", got)
	}
	want := map[string]int{PredicateTypeApproval: 1, PredicateTypeVuln: 1, PredicateTypeCycloneDX: 1}
	if counts := e.attestationTypes(image); !equalCounts(counts, want) {
		t.Errorf("attestations by type = %v, want %v", counts, want)
	}
	if n := e.signatures(image); n != 1 {
		t.Errorf("signatures = %d, want 1", n)
	}

	// The approval that remains is the later one, and verifies.
	atts, _, err := cosign.VerifyImageAttestations(context.Background(), image, e.checkOpts(t, key.PublicKeyPEM()))
	if err != nil {
		t.Fatalf("verifying attestations: %v", err)
	}
	var approvals []Approval
	for _, att := range atts {
		st := decodeStatement(t, att)
		if st.PredicateType != PredicateTypeApproval {
			continue
		}
		var a Approval
		if err := json.Unmarshal(st.Predicate, &a); err != nil {
			t.Fatal(err)
		}
		approvals = append(approvals, a)
	}
	if len(approvals) != 1 || !approvals[0].ValidUntil.Equal(later) {
		t.Fatalf("approvals = %+v, want one valid until %s", approvals, later)
	}
	a := approvals[0]
	if a.Digest != image.DigestStr() || a.Policy != "base-images" || a.PolicyGeneration != 3 || !a.ApprovedAt.Equal(judged) ||
		len(a.Exceptions) != 1 || a.Exceptions[0].ID != "CVE-2026-0002" {
		t.Errorf("approval = %+v", a)
	}
}

func TestPublishWithRotatedKeyAddsVerifyingSignature(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "rotate")
	oldKey := testKey(t)
	newKey := ed25519Key(t)
	var s Signer
	p := testPublication(judged.Add(24 * time.Hour))
	if _, err := s.Publish(context.Background(), image, oldKey, p, e.registry()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cosign.VerifyImageSignatures(context.Background(), image, e.checkOpts(t, newKey.PublicKeyPEM())); err == nil {
		t.Fatal("the new key verifies a signature before it signed anything")
	}
	got, err := s.Publish(context.Background(), image, newKey, p, e.registry())
	if err != nil {
		t.Fatal(err)
	}
	if !got.SignatureAdded || len(got.AttestationsWritten) != 3 || got.KeyFingerprint != newKey.Fingerprint() {
		t.Fatalf("publish with the new key: %+v; want a signature added and all 3 attestations re-signed", got)
	}
	opts := e.checkOpts(t, newKey.PublicKeyPEM())
	opts.ClaimVerifier = cosign.SimpleClaimVerifier
	sigs, _, err := cosign.VerifyImageSignatures(context.Background(), image, opts)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("verifying with the new key: %d signatures, %v", len(sigs), err)
	}
	opts = e.checkOpts(t, newKey.PublicKeyPEM())
	opts.ClaimVerifier = cosign.IntotoSubjectClaimVerifier
	atts, _, err := cosign.VerifyImageAttestations(context.Background(), image, opts)
	if err != nil || len(atts) != 3 {
		t.Fatalf("verifying attestations with the new key: %d, %v", len(atts), err)
	}
	if n := e.signatures(image); n != 2 {
		t.Errorf("signatures = %d, want 2 (the old key's stays)", n)
	}
	want := map[string]int{PredicateTypeApproval: 1, PredicateTypeVuln: 1, PredicateTypeCycloneDX: 1}
	if counts := e.attestationTypes(image); !equalCounts(counts, want) {
		t.Errorf("attestations by type = %v, want %v", counts, want)
	}
}

func TestPublishKeepsOtherAttestations(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "others")
	key := testKey(t)
	// Someone attests provenance with the same tooling first.
	var s Signer
	other, err := s.newAttestation(context.Background(), key, wantedAttestation{predicateType: "https://slsa.dev/provenance/v1", payload: []byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// And two approvals are there already, as "cosign attest" without
	// --replace leaves them.
	stale1, err := s.newAttestation(context.Background(), key, wantedAttestation{predicateType: PredicateTypeApproval, payload: []byte(`{"stale":1}`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stale2, err := s.newAttestation(context.Background(), key, wantedAttestation{predicateType: PredicateTypeApproval, payload: []byte(`{"stale":2}`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.writeAttestations(image, other, stale1, stale2)

	got, err := s.Publish(context.Background(), image, key, testPublication(judged.Add(time.Hour)), e.registry())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.AttestationsWritten) != 3 {
		t.Errorf("written %v, want all three", got.AttestationsWritten)
	}
	want := map[string]int{PredicateTypeApproval: 1, PredicateTypeVuln: 1, PredicateTypeCycloneDX: 1, "https://slsa.dev/provenance/v1": 1}
	if counts := e.attestationTypes(image); !equalCounts(counts, want) {
		t.Errorf("attestations by type = %v, want %v", counts, want)
	}
}

func TestPublishRestoresDeletedAttestations(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "restore")
	key := testKey(t)
	var s Signer
	p := testPublication(judged.Add(time.Hour))
	if _, err := s.Publish(context.Background(), image, key, p, e.registry()); err != nil {
		t.Fatal(err)
	}
	e.writeAttestations(image) // someone emptied the .att image
	got, err := s.Publish(context.Background(), image, key, p, e.registry())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Changed || got.SignatureAdded || len(got.AttestationsWritten) != 3 {
		t.Errorf("published %+v, want the three attestations written and no signature added", got)
	}
	want := map[string]int{PredicateTypeApproval: 1, PredicateTypeVuln: 1, PredicateTypeCycloneDX: 1}
	if counts := e.attestationTypes(image); !equalCounts(counts, want) {
		t.Errorf("attestations by type = %v, want %v", counts, want)
	}
}

func TestPublishSignatureRepository(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "elsewhere")
	key := testKey(t)
	p := testPublication(judged.Add(time.Hour))
	p.SignatureRepository = e.reg.Host + "/signatures/alpine"
	got, err := new(Signer).Publish(context.Background(), image, key, p, e.registry())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.Signature, e.reg.Host+"/signatures/alpine:sha256-") {
		t.Errorf("signature at %s, want it in the signature repository", got.Signature)
	}
	if n := e.signatures(image); n != 0 {
		t.Errorf("%d signatures next to the image, want none", n)
	}
	opts := e.checkOpts(t, key.PublicKeyPEM())
	opts.ClaimVerifier = cosign.SimpleClaimVerifier
	opts.RegistryClientOpts = append(opts.RegistryClientOpts, targetRepository(t, p.SignatureRepository))
	if _, _, err := cosign.VerifyImageSignatures(context.Background(), image, opts); err != nil {
		t.Fatalf("verifying in the signature repository: %v", err)
	}
}

func TestPublishPushRefusedIsClassified(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "denied")
	e.deny.Store(true)
	_, err := new(Signer).Publish(context.Background(), image, testKey(t), testPublication(judged.Add(time.Hour)), e.registry())
	if err == nil {
		t.Fatal("publish to a registry refusing pushes succeeded")
	}
	if k := registry.KindOf(err); k != registry.KindUnauthorized {
		t.Errorf("kind = %q, want %q (error %q)", k, registry.KindUnauthorized, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "403") || strings.Contains(msg, e.reg.Host) || strings.Contains(msg, "http") {
		t.Errorf("message %q: want the status and no address", msg)
	}
	if msg != "pushing the signature: registry denied access (HTTP 403)" {
		t.Errorf("message %q is not the stable one", msg)
	}
}

func TestPublishRefusesBadInput(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "bad")
	key := testKey(t)
	for name, mutate := range map[string]func(*Publication){
		"other digest":  func(p *Publication) { p.Approval.Digest = "sha256:" + strings.Repeat("0", 64) },
		"not approved":  func(p *Publication) { p.Approval.Verdict = "denied" },
		"no sbom":       func(p *Publication) { p.SBOM = nil },
		"sbom not json": func(p *Publication) { p.SBOM = []byte("<bom/>") },
		"no validUntil": func(p *Publication) { p.Approval.ValidUntil = time.Time{} },
	} {
		t.Run(name, func(t *testing.T) {
			p := testPublication(judged.Add(time.Hour))
			mutate(&p)
			before := e.writes.Load()
			if _, err := new(Signer).Publish(context.Background(), image, key, p, e.registry()); !errors.Is(err, ErrInvalidPublication) {
				t.Errorf("error %v, want ErrInvalidPublication", err)
			}
			if e.writes.Load() != before {
				t.Error("a refused publication pushed something")
			}
		})
	}
	if _, err := new(Signer).Publish(context.Background(), image, nil, testPublication(judged), e.registry()); !errors.Is(err, ErrInvalidPublication) {
		t.Errorf("no key: error %v, want ErrInvalidPublication", err)
	}
}

type statementJSON struct {
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
}

func decodeStatement(t testing.TB, att interface{ Payload() ([]byte, error) }) statementJSON {
	t.Helper()
	raw, err := att.Payload()
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Payload string }
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var st statementJSON
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Catalog entries that name the same digest publish at the same time: the
// digest gets one signature and one attestation of each type, not one per
// entry.
func TestConcurrentPublishesOfOneDigestSignOnce(t *testing.T) {
	e := newPublishEnv(t)
	image := e.push("base/alpine", "concurrent")
	key := testKey(t)
	var s Signer
	p := testPublication(judged.Add(24 * time.Hour))

	const entries = 8
	var wg sync.WaitGroup
	errs := make(chan error, entries)
	for range entries {
		wg.Go(func() {
			if _, err := s.Publish(context.Background(), image, key, p, e.registry()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.signatures(image); n != 1 {
		t.Errorf("signatures = %d, want 1", n)
	}
	want := map[string]int{PredicateTypeApproval: 1, PredicateTypeVuln: 1, PredicateTypeCycloneDX: 1}
	if got := e.attestationTypes(image); !equalCounts(got, want) {
		t.Errorf("attestations by type = %v, want %v", got, want)
	}
}
