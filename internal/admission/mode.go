// Package admission is plinth's validating admission webhook: it checks
// that the images of Pods and pod templates (Deployments, StatefulSets,
// DaemonSets, ReplicaSets, Jobs, CronJobs) are built on an approved base
// of the catalog, and denies, warns or records what it finds, as the
// namespace's catalog.plinth.dev/admission label asks.
//
// Decisions come from the in-memory catalog index through a
// catalog.Matcher: an image whose digest was seen before costs no registry
// read; a new one costs one bounded, cached, single-flight read within the
// request's deadline. When that read cannot finish in time the image is
// Unknown, and the namespace's mode and the unknown policy decide; the
// request itself is never held past the deadline.
package admission

import (
	"fmt"
	"strings"
)

// ModeLabel is the namespace label that enrols a namespace in admission
// control and chooses its mode.
const ModeLabel = "catalog.plinth.dev/admission"

// Mode is what the webhook does with an image that is not on an approved
// base.
type Mode string

const (
	// Enforce denies the request; the message names the images and the
	// approved bases to use instead.
	Enforce Mode = "enforce"
	// Warn admits the request with an admission warning per image.
	Warn Mode = "warn"
	// Audit admits the request, records an Event and counts the decision.
	Audit Mode = "audit"
)

// Modes lists every mode.
var Modes = []Mode{Enforce, Warn, Audit}

// ParseMode reads a namespace label value; ok is false for anything but
// the three modes.
func ParseMode(s string) (m Mode, ok bool) {
	switch Mode(strings.TrimSpace(s)) {
	case Enforce:
		return Enforce, true
	case Warn:
		return Warn, true
	case Audit:
		return Audit, true
	}
	return "", false
}

// UnknownPolicy is what enforce mode does with an image plinth cannot
// classify in time (a registry that does not answer, a deadline that
// passes).
type UnknownPolicy string

const (
	// AllowUnknown admits the request with a warning: a slow registry never
	// blocks a rollout.
	AllowUnknown UnknownPolicy = "allow"
	// DenyUnknown denies the request: only images known to be on an
	// approved base run.
	DenyUnknown UnknownPolicy = "deny"
)

// ParseUnknownPolicy reads the --admission-unknown flag.
func ParseUnknownPolicy(s string) (UnknownPolicy, error) {
	switch UnknownPolicy(s) {
	case AllowUnknown, DenyUnknown:
		return UnknownPolicy(s), nil
	}
	return "", fmt.Errorf("unknown image policy %q: want allow or deny", s)
}
