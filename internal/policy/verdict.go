package policy

import (
	"fmt"
	"time"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Input is what the verdict is computed from.
type Input struct {
	// Now is the time of the evaluation.
	Now time.Time

	// ImageCreated is the image's creation time; zero when unknown.
	ImageCreated time.Time

	// MaxAge is the policy's maxAge; zero means no limit.
	MaxAge time.Duration

	// UpstreamDigest is the digest the upstream image points at now; empty
	// when the entry has no upstream.
	UpstreamDigest string

	// BaseDigest is the upstream digest the image was built from; empty when
	// unknown.
	BaseDigest string

	// Vulnerabilities of the digest; nil when the digest is not judged on
	// vulnerabilities (scanning is off).
	Vulnerabilities *Vulnerabilities
}

// Verdict is the decision on one digest.
type Verdict struct {
	// Approved is the Approved condition's status, with its reason and
	// message.
	Approved        bool
	ApprovedReason  string
	ApprovedMessage string

	// Stale says whether a rebuild is due, with its reason and message.
	Stale        bool
	StaleReason  string
	StaleMessage string

	// NextDeadline is the next time the verdict changes by itself without
	// any new observation (the image crossing maxAge, a remediation window
	// closing, an exception expiring); zero when none.
	NextDeadline time.Time

	// Summary counts the findings by severity, and TopFindings lists the
	// most important ones; both are empty when vulnerabilities are not
	// judged.
	Summary     *catalogv1.VulnerabilitySummary
	TopFindings []catalogv1.Finding
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
		v.Approved, v.ApprovedReason, v.ApprovedMessage = vv.approved, vv.reason, vv.message
	}

	v.StaleReason, v.StaleMessage = catalogv1.UpToDateReason, "No rebuild is due"
	switch {
	case vv.fixAvailable != "":
		v.Stale, v.StaleReason, v.StaleMessage = true, catalogv1.FixAvailableReason, vv.fixAvailable
	case in.MaxAge > 0 && !in.ImageCreated.IsZero() && !in.Now.Before(in.ImageCreated.Add(in.MaxAge)):
		v.Stale, v.StaleReason = true, catalogv1.MaxAgeExceededReason
		v.StaleMessage = fmt.Sprintf("The image is older than the policy's maxAge of %s", in.MaxAge)
	case in.UpstreamDigest != "" && in.BaseDigest != "" && in.UpstreamDigest != in.BaseDigest:
		v.Stale, v.StaleReason = true, catalogv1.UpstreamUpdatedReason
		v.StaleMessage = fmt.Sprintf("The upstream image moved to %s; the image was built from %s", in.UpstreamDigest, in.BaseDigest)
	}
	if in.MaxAge > 0 && !in.ImageCreated.IsZero() && in.Now.Before(in.ImageCreated.Add(in.MaxAge)) {
		if d := in.ImageCreated.Add(in.MaxAge); v.NextDeadline.IsZero() || d.Before(v.NextDeadline) {
			v.NextDeadline = d
		}
	}
	return v
}
