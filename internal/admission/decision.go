package admission

import (
	"fmt"
	"strings"

	"github.com/plinth-dev/plinth/internal/catalog"
)

// Limits that keep answers readable however large the pod spec.
const (
	// maxImagesInMessage is the most images a denial names.
	maxImagesInMessage = 5
	// maxWarnings is the most warnings a response carries.
	maxWarnings = 10
	// maxPathsPerImage is the most container fields named per image.
	maxPathsPerImage = 3
)

// Decision labels of plinth_admission_decisions_total.
const (
	decisionAllow = "allow"
	decisionWarn  = "warn"
	decisionDeny  = "deny"
)

// Class labels of plinth_admission_decisions_total, worst last.
const (
	classApproved   = "approved"
	classUnknown    = "unknown"
	classSuperseded = "superseded"
	classUnapproved = "unapproved"
)

var (
	classes   = []string{classApproved, classUnknown, classSuperseded, classUnapproved}
	decisions = []string{decisionAllow, decisionWarn, decisionDeny}
)

// verdict is the classification of one distinct image of a request.
type verdict struct {
	// Image is the reference as written in the spec.
	Image string
	// Paths name the container fields that use it.
	Paths []string
	// Result is the Matcher's verdict.
	Result catalog.Result
	// Invalid is set when the reference cannot be parsed.
	Invalid error
}

// class returns the metric class of v. An invalid reference can be on no
// approved base, so it counts as unapproved.
func (v verdict) class() string {
	if v.Invalid != nil {
		return classUnapproved
	}
	switch v.Result.Class {
	case catalog.Approved:
		return classApproved
	case catalog.Superseded:
		return classSuperseded
	case catalog.Unapproved:
		return classUnapproved
	}
	return classUnknown
}

// rank orders classes from best to worst.
func rank(class string) int {
	for i, c := range classes {
		if c == class {
			return i
		}
	}
	return 0
}

// decision is the webhook's answer to one request.
type decision struct {
	Allowed bool
	// Message explains a denial.
	Message string
	// Warnings are returned to the client with the answer.
	Warnings []string
	// Class is the worst class among the request's images.
	Class string
	// Decision is allow, warn or deny.
	Decision string
	// Findings are the images not on an approved base, in spec order.
	Findings []verdict
}

// decide turns the verdicts on a request's images into an answer, as mode
// and the unknown policy ask. It is a pure function.
func decide(mode Mode, unknown UnknownPolicy, verdicts []verdict) decision {
	d := decision{Allowed: true, Class: classApproved, Decision: decisionAllow}
	var violations, unknowns []verdict
	for _, v := range verdicts {
		c := v.class()
		if rank(c) > rank(d.Class) {
			d.Class = c
		}
		switch c {
		case classApproved:
			continue
		case classUnknown:
			unknowns = append(unknowns, v)
		default:
			violations = append(violations, v)
		}
		d.Findings = append(d.Findings, v)
	}
	if len(d.Findings) == 0 {
		return d
	}
	switch mode {
	case Enforce:
		denied := violations
		if unknown == DenyUnknown {
			denied = d.Findings
		}
		if len(denied) > 0 {
			d.Allowed, d.Decision = false, decisionDeny
			d.Message = denial(denied)
			return d
		}
		d.Decision = decisionWarn
		d.Warnings = warnings(unknowns)
	case Warn:
		d.Decision = decisionWarn
		d.Warnings = warnings(d.Findings)
	}
	return d
}

// denial is the message of a denied request: each image, why, and the
// approved bases to use instead.
func denial(vs []verdict) string {
	parts := make([]string, 0, min(len(vs), maxImagesInMessage)+1)
	for i, v := range vs {
		if i == maxImagesInMessage {
			parts = append(parts, fmt.Sprintf("and %d more images", len(vs)-i))
			break
		}
		parts = append(parts, describe(v, true))
	}
	return strings.Join(parts, "; ")
}

// warnings are one short warning per image, at most maxWarnings.
func warnings(vs []verdict) []string {
	out := make([]string, 0, min(len(vs), maxWarnings))
	for i, v := range vs {
		if i == maxWarnings-1 && len(vs) > maxWarnings {
			out = append(out, fmt.Sprintf("plinth: and %d more images not on an approved base", len(vs)-i))
			break
		}
		out = append(out, "plinth: "+describe(v, true))
	}
	return out
}

// describe says what is wrong with one image; with alternatives, it names
// the approved bases to use instead.
func describe(v verdict, withAlternatives bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "image %q in %s ", v.Image, paths(v.Paths))
	switch {
	case v.Invalid != nil:
		fmt.Fprintf(&b, "is not a valid image reference: %v", v.Invalid)
		return b.String()
	case v.Result.Class == catalog.Unknown:
		fmt.Fprintf(&b, "could not be checked against the catalog (%s)", v.Result.Reason)
		return b.String()
	default:
		fmt.Fprintf(&b, "is not on an approved base (%s)", v.Result.Reason)
	}
	if !withAlternatives {
		return b.String()
	}
	if alts := v.Result.Alternatives; len(alts) > 0 {
		names := make([]string, len(alts))
		for i, a := range alts {
			names[i] = a.Image
		}
		fmt.Fprintf(&b, "; approved bases to build on instead: %s", strings.Join(names, ", "))
	} else {
		b.WriteString("; the catalog has no approved base yet")
	}
	return b.String()
}

func paths(ps []string) string {
	if len(ps) <= maxPathsPerImage {
		return strings.Join(ps, ", ")
	}
	return fmt.Sprintf("%s and %d more containers", strings.Join(ps[:maxPathsPerImage], ", "), len(ps)-maxPathsPerImage)
}
