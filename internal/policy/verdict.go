package policy

import (
	"fmt"
	"sort"
	"time"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Input is what the verdict is computed from.
type Input struct {
	// Now is the time of the evaluation.
	Now time.Time

	// ImageCreated is the image's creation time; zero when unknown.
	ImageCreated time.Time

	// FirstSeen is when plinth first saw the digest. When the creation time
	// is unknown, maxAge counts from it.
	FirstSeen time.Time

	// MaxAge is the policy's maxAge; zero means no limit.
	MaxAge time.Duration

	// UpstreamDigest is the digest the upstream image points at now; empty
	// when the entry has no upstream.
	UpstreamDigest string

	// BaseDigest is the upstream digest the image was built from; empty when
	// unknown.
	BaseDigest string

	// UpstreamUnknownReason and UpstreamUnknownMessage, when set, say why
	// the upstream could not be read; whether it moved is then unknown.
	UpstreamUnknownReason, UpstreamUnknownMessage string

	// Vulnerabilities of the digest; nil when the digest is not judged on
	// vulnerabilities (scanning is off).
	Vulnerabilities *Vulnerabilities

	// Hardening holds the digest's hardening facts and secrets; nil when
	// they are not judged (scanning is off).
	Hardening *Hardening
}

// Verdict is the decision on one digest.
type Verdict struct {
	// Approved is the Approved condition's status, with its reason and
	// message.
	Approved        bool
	ApprovedReason  string
	ApprovedMessage string

	// Stale says whether a rebuild is due, with its reason and message.
	// StaleUnknown is true (and Stale false) when no rebuild is known to be
	// due but the upstream could not be checked.
	Stale        bool
	StaleUnknown bool
	StaleReason  string
	StaleMessage string

	// RevokeDeadline is when the approval lapses by itself unless something
	// changes: the end of the first remediation window running, or the
	// expiry of an exception a blocking finding depends on; zero when none.
	RevokeDeadline time.Time

	// FirstSeen maps Finding.Key to the first detection of every finding
	// that blocks approval or would without its exception, for the caller
	// to keep so that deadlines never restart.
	FirstSeen map[string]time.Time

	// ExceptionsApplied lists the exceptions that covered a finding, by id,
	// sorted.
	ExceptionsApplied []AppliedException

	// NextDeadline is the next time the verdict changes by itself without
	// any new observation (the image crossing maxAge, a remediation window
	// closing, an exception expiring); zero when none.
	NextDeadline time.Time

	// Summary counts the findings by severity, and TopFindings lists the
	// most important ones; both are empty when vulnerabilities are not
	// judged.
	Summary     *catalogv1.VulnerabilitySummary
	TopFindings []catalogv1.Finding

	// Hardening counts the hardening and secret findings; nil when they
	// are not judged.
	Hardening *catalogv1.HardeningStatus
}

// AppliedException is an exception a verdict relied on.
type AppliedException struct {
	ID      string
	Expires time.Time
}

// Evaluate computes the verdict. Messages depend only on the input's
// observations, never on Now, so an unchanged observation gives an
// unchanged verdict.
func Evaluate(in Input) Verdict {
	v := Verdict{Approved: true, ApprovedReason: catalogv1.PolicyPassedReason, ApprovedMessage: "The image meets the policy"}

	var vv vulnVerdict
	if in.Vulnerabilities != nil {
		vv = evaluateVulnerabilities(in.Now, in.Vulnerabilities)
		v.Summary, v.TopFindings, v.NextDeadline = &vv.summary, vv.top, vv.nextDeadline
		v.RevokeDeadline, v.FirstSeen = vv.revokeDeadline, vv.firstSeen
		for id, t := range vv.applied {
			v.ExceptionsApplied = append(v.ExceptionsApplied, AppliedException{ID: id, Expires: t})
		}
		sort.Slice(v.ExceptionsApplied, func(i, j int) bool { return v.ExceptionsApplied[i].ID < v.ExceptionsApplied[j].ID })
		v.Approved, v.ApprovedReason, v.ApprovedMessage = vv.approved, vv.reason, vv.message
	}

	if in.Hardening != nil {
		judgeHardening(&v, evaluateHardening(in.Now, in.Hardening))
	}

	// Age counts from the creation time, or else from when plinth first saw
	// the digest.
	born, bornKnown := in.ImageCreated, true
	if born.IsZero() {
		born, bornKnown = in.FirstSeen, false
	}
	v.StaleReason, v.StaleMessage = catalogv1.UpToDateReason, "No rebuild is due"
	switch {
	case vv.fixAvailable != "":
		v.Stale, v.StaleReason, v.StaleMessage = true, catalogv1.FixAvailableReason, vv.fixAvailable
	case in.MaxAge > 0 && !born.IsZero() && !in.Now.Before(born.Add(in.MaxAge)):
		v.Stale, v.StaleReason = true, catalogv1.MaxAgeExceededReason
		v.StaleMessage = fmt.Sprintf("The image is older than the policy's maxAge of %s", in.MaxAge)
		if !bornKnown {
			v.StaleMessage = fmt.Sprintf("The image records no creation time, and plinth first saw it longer ago than the policy's maxAge of %s", in.MaxAge)
		}
	case in.UpstreamUnknownReason != "":
		v.StaleUnknown, v.StaleReason, v.StaleMessage = true, in.UpstreamUnknownReason, in.UpstreamUnknownMessage
	case in.UpstreamDigest != "" && in.BaseDigest != "" && in.UpstreamDigest != in.BaseDigest:
		v.Stale, v.StaleReason = true, catalogv1.UpstreamUpdatedReason
		v.StaleMessage = fmt.Sprintf("The upstream image moved to %s; the image was built from %s", in.UpstreamDigest, in.BaseDigest)
	}
	if in.MaxAge > 0 && !born.IsZero() && in.Now.Before(born.Add(in.MaxAge)) {
		if d := born.Add(in.MaxAge); v.NextDeadline.IsZero() || d.Before(v.NextDeadline) {
			v.NextDeadline = d
		}
	}
	return v
}

// IsUnknownCreationTime tells whether an image's recorded creation time
// says nothing of its age: unset, or at (or near) the Unix epoch, as
// reproducible builds (distroless, ko, Bazel, Nix) record it.
func IsUnknownCreationTime(t time.Time) bool {
	return t.Before(reproducibleEpochLimit)
}

// reproducibleEpochLimit: creation times before it are placeholders. Some
// reproducible builds use 1980-01-01 (the earliest zip time) rather than
// 1970.
var reproducibleEpochLimit = time.Date(1980, 1, 2, 0, 0, 0, 0, time.UTC)

// judgeHardening adds the hardening and secrets part to a verdict. A
// secret refuses approval before anything else; a hardening violation
// refuses it when the vulnerabilities do not already. An exception a
// finding depends on sets the revoke deadline when it expires.
func judgeHardening(v *Verdict, hv hardVerdict) {
	v.Hardening = &hv.status
	applied := map[string]time.Time{}
	for _, e := range v.ExceptionsApplied {
		applied[e.ID] = e.Expires
	}
	for _, f := range hv.excepted {
		t := f.exceptionExpires
		if old, ok := applied[f.id]; !ok || t.After(old) {
			applied[f.id] = t
		}
		if v.RevokeDeadline.IsZero() || t.Before(v.RevokeDeadline) {
			v.RevokeDeadline = t
		}
		if v.NextDeadline.IsZero() || t.Before(v.NextDeadline) {
			v.NextDeadline = t
		}
	}
	v.ExceptionsApplied = v.ExceptionsApplied[:0]
	for id, t := range applied {
		v.ExceptionsApplied = append(v.ExceptionsApplied, AppliedException{ID: id, Expires: t})
	}
	sort.Slice(v.ExceptionsApplied, func(i, j int) bool { return v.ExceptionsApplied[i].ID < v.ExceptionsApplied[j].ID })
	if len(v.ExceptionsApplied) == 0 {
		v.ExceptionsApplied = nil
	}
	switch {
	case len(hv.blockingSecrets) > 0:
		v.Approved, v.ApprovedReason = false, catalogv1.SecretFoundReason
		v.ApprovedMessage = "Secrets found in the image: " + listHard(hv.blockingSecrets)
	case !v.Approved:
	case len(hv.violations) > 0:
		v.Approved, v.ApprovedReason = false, catalogv1.HardeningViolationReason
		v.ApprovedMessage = "The image breaks the hardening policy: " + listHard(hv.violations)
	}
}
