package sign

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"
)

// Predicate types of the attestations Publish attaches. "cosign
// verify-attestation --type" accepts the short names vuln and cyclonedx
// for the first two, and the full URI for the third.
const (
	// PredicateTypeApproval is plinth's own predicate: see Approval.
	PredicateTypeApproval = "https://plinth.dev/attestations/approval/v1"
	// PredicateTypeVuln is cosign's vulnerability-scan predicate.
	PredicateTypeVuln = attestation.CosignVulnProvenanceV01
	// PredicateTypeCycloneDX is a CycloneDX SBOM.
	PredicateTypeCycloneDX = "https://cyclonedx.org/bom"
)

// VerdictApproved is the only verdict plinth attests: a digest that fails
// its policy gets no approval attestation.
const VerdictApproved = "approved"

// Approval is the predicate of plinth's approval attestation, predicate
// type https://plinth.dev/attestations/approval/v1. It says that a named
// ImagePolicy approved an image digest, on the evidence of a named
// vulnerability DB build, with some exceptions applied, until a deadline.
// Admission controllers (sigstore policy-controller, Kyverno) can require
// it to admit only catalog-approved bases, and check validUntil.
//
// The predicate is JSON with these fields (times are RFC 3339 in UTC,
// whole seconds):
//
//	{
//	  "policy": {"name": "base-images", "generation": 3},
//	  "verdict": "approved",
//	  "digest": "sha256:…",
//	  "vulnDBVersion": "2026-08-13T06:12:44Z",
//	  "exceptions": [{"id": "CVE-2026-1234", "expires": "2026-10-01T00:00:00Z"}],
//	  "approvedAt": "2026-08-14T09:00:00Z",
//	  "validUntil": "2026-08-15T09:00:00Z"
//	}
//
// exceptions is always present (an empty list when none applied) and
// sorted by id. Publish writes the statement only when its bytes change:
// callers keep ApprovedAt at the time the digest was first approved, so
// that re-judging an approved digest under the same evidence changes only
// ValidUntil.
type Approval struct {
	// Policy is the name of the ImagePolicy that judged the digest.
	Policy string
	// PolicyGeneration is that policy's metadata.generation at judgement.
	PolicyGeneration int64
	// Verdict is VerdictApproved; Publish sets it when empty and refuses
	// any other.
	Verdict string
	// Digest is the approved image digest, "sha256:<hex>". Publish sets it
	// from the image it signs when empty, and refuses a different one.
	Digest string
	// VulnDBVersion names the vulnerability DB build the verdict used.
	VulnDBVersion string
	// Exceptions lists the policy exceptions the verdict relied on.
	Exceptions []AppliedException
	// ApprovedAt is when the digest was first approved.
	ApprovedAt time.Time
	// ValidUntil is when the approval lapses unless renewed: the next
	// rescan deadline, or an earlier exception expiry.
	ValidUntil time.Time
}

// AppliedException is a policy exception an approval relied on.
type AppliedException struct {
	// ID is the vulnerability (or finding) id the exception covers.
	ID string
	// Expires is when the exception stops applying.
	Expires time.Time
}

type approvalJSON struct {
	Policy        policyJSON      `json:"policy"`
	Verdict       string          `json:"verdict"`
	Digest        string          `json:"digest"`
	VulnDBVersion string          `json:"vulnDBVersion"`
	Exceptions    []exceptionJSON `json:"exceptions"`
	ApprovedAt    string          `json:"approvedAt"`
	ValidUntil    string          `json:"validUntil"`
}

type policyJSON struct {
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
}

type exceptionJSON struct {
	ID      string `json:"id"`
	Expires string `json:"expires"`
}

func rfc3339(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// MarshalJSON encodes the predicate in its documented form.
func (a Approval) MarshalJSON() ([]byte, error) {
	out := approvalJSON{
		Policy:        policyJSON{Name: a.Policy, Generation: a.PolicyGeneration},
		Verdict:       a.Verdict,
		Digest:        a.Digest,
		VulnDBVersion: a.VulnDBVersion,
		Exceptions:    make([]exceptionJSON, 0, len(a.Exceptions)),
		ApprovedAt:    rfc3339(a.ApprovedAt),
		ValidUntil:    rfc3339(a.ValidUntil),
	}
	for _, e := range a.Exceptions {
		out.Exceptions = append(out.Exceptions, exceptionJSON{ID: e.ID, Expires: rfc3339(e.Expires)})
	}
	slices.SortFunc(out.Exceptions, func(x, y exceptionJSON) int {
		return cmp.Or(cmp.Compare(x.ID, y.ID), cmp.Compare(x.Expires, y.Expires))
	})
	return json.Marshal(out)
}

// UnmarshalJSON decodes the documented form.
func (a *Approval) UnmarshalJSON(b []byte) error {
	var in approvalJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	parse := func(field, s string) (time.Time, error) {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("approval %s is not an RFC 3339 time", field)
		}
		return t, nil
	}
	out := Approval{Policy: in.Policy.Name, PolicyGeneration: in.Policy.Generation, Verdict: in.Verdict,
		Digest: in.Digest, VulnDBVersion: in.VulnDBVersion}
	var err error
	if out.ApprovedAt, err = parse("approvedAt", in.ApprovedAt); err != nil {
		return err
	}
	if out.ValidUntil, err = parse("validUntil", in.ValidUntil); err != nil {
		return err
	}
	for _, e := range in.Exceptions {
		exp, err := parse("exception expiry", e.Expires)
		if err != nil {
			return err
		}
		out.Exceptions = append(out.Exceptions, AppliedException{ID: e.ID, Expires: exp})
	}
	*a = out
	return nil
}

// Finding is one vulnerability in the vuln attestation's scanner result.
type Finding struct {
	// ID is the vulnerability id, such as CVE-2026-1234.
	ID string `json:"id"`
	// Severity is CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN.
	Severity string `json:"severity"`
	// Package is the affected package's name.
	Package string `json:"package"`
	// Installed is the installed version.
	Installed string `json:"installed"`
	// Fixed is the first fixed version, empty when there is none.
	Fixed string `json:"fixed,omitempty"`
}

// Scanner identifies what produced the findings, for the vuln predicate.
type Scanner struct {
	// Name is the scanner's name, such as "trivy"; it becomes the
	// predicate's scanner.uri.
	Name string
	// Version is the scanner's version.
	Version string
	// DBVersion names the vulnerability DB build used.
	DBVersion string
	// DBURI says where the DB came from, such as an OCI reference; optional.
	DBURI string
}

// vulnResult is the vuln predicate's scanner.result.
type vulnResult struct {
	Findings []Finding `json:"findings"`
}

// vulnPredicate builds the vuln predicate. Findings are sorted so that the
// same findings in another order give the same bytes.
func vulnPredicate(sc Scanner, findings []Finding, scannedAt time.Time) ([]byte, error) {
	fs := slices.Clone(findings)
	if fs == nil {
		fs = []Finding{}
	}
	slices.SortFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Package, b.Package),
			cmp.Compare(a.Installed, b.Installed), cmp.Compare(a.Fixed, b.Fixed), cmp.Compare(a.Severity, b.Severity))
	})
	at := scannedAt.UTC().Truncate(time.Second)
	p := attestation.CosignVulnPredicate{
		Scanner: attestation.Scanner{
			URI:     sc.Name,
			Version: sc.Version,
			DB:      attestation.DB{URI: sc.DBURI, Version: sc.DBVersion},
			Result:  vulnResult{Findings: fs},
		},
		Metadata: attestation.Metadata{ScanStartedOn: at, ScanFinishedOn: at},
	}
	return json.Marshal(p)
}

// statement wraps a predicate in an in-toto statement about repo@digest,
// the way "cosign attest" does, and returns its JSON: the DSSE payload.
// typ is GenerateStatement's type: "vuln", "cyclonedx" or a predicate URI.
func statement(typ string, predicate []byte, repo, digestHex string) ([]byte, error) {
	st, err := attestation.GenerateStatement(attestation.GenerateOpts{
		Predicate: bytes.NewReader(predicate),
		Type:      typ,
		Digest:    digestHex,
		Repo:      repo,
		Time:      func() time.Time { return time.Time{} }, // unused: no type of ours is timestamped
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}
