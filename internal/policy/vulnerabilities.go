package policy

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Finding is one vulnerability found in a digest.
type Finding struct {
	ID               string
	Severity         catalogv1.Severity
	Package          string
	InstalledVersion string
	FixedVersion     string
}

// Key identifies a finding across scans of the same entry.
func (f Finding) Key() string { return f.ID + "|" + f.Package + "|" + f.InstalledVersion }

// Vulnerabilities is what the vulnerability part of the verdict is computed
// from.
type Vulnerabilities struct {
	// Findings of the digest under the current DB.
	Findings []Finding

	// Policy is the ImagePolicy's vulnerabilities section (nil: defaults).
	Policy *catalogv1.VulnerabilityPolicy

	// Exceptions of the ImagePolicy.
	Exceptions []catalogv1.VulnerabilityException

	// Image is the BaseImage's spec.image, matched against exception globs.
	Image string

	// ApprovedAt is when this digest was first approved; zero when it has
	// not been. Remediation windows apply only to approved digests.
	ApprovedAt time.Time

	// FirstSeen maps Finding.Key to when the finding was first detected in
	// this entry; findings not in it are new as of Now.
	FirstSeen map[string]time.Time
}

// vulnVerdict is the vulnerability part of a verdict.
type vulnVerdict struct {
	approved     bool
	reason       string
	message      string
	fixAvailable string // message for Stale FixAvailable, "" when none
	summary      catalogv1.VulnerabilitySummary
	top          []catalogv1.Finding
	nextDeadline time.Time
	// revokeDeadline is the first time the approval lapses by itself.
	revokeDeadline time.Time
	// firstSeen of the findings worth recording.
	firstSeen map[string]time.Time
	// applied are the exceptions that covered a finding, by id.
	applied map[string]time.Time
}

type judged struct {
	f                Finding
	firstSeen        time.Time
	counted          bool      // not left out by ignoreUnfixed
	exceptionExpires time.Time // active exception, zero when none
	exceptionExpired bool      // a matching exception has expired
	offending        bool      // against the policy
	deadline         time.Time // remediation deadline, zero when none
}

func (j *judged) revokes(now time.Time) bool {
	return j.offending && (j.deadline.IsZero() || !now.Before(j.deadline))
}

func severityRank(s catalogv1.Severity) int {
	for i, x := range catalogv1.Severities {
		if x == s {
			return i
		}
	}
	return len(catalogv1.Severities)
}

// evaluateVulnerabilities judges findings against the policy at time now.
func evaluateVulnerabilities(now time.Time, in *Vulnerabilities) vulnVerdict {
	var v vulnVerdict
	blocked := map[catalogv1.Severity]bool{}
	for _, s := range in.Policy.BlockSeveritiesOrDefault() {
		blocked[s] = true
	}
	var maxCount *catalogv1.SeverityLimits
	var windows *catalogv1.SeverityWindows
	ignoreUnfixed := false
	if in.Policy != nil {
		maxCount, windows, ignoreUnfixed = in.Policy.MaxCount, in.Policy.RemediationWindows, in.Policy.IgnoreUnfixed
	}

	js := make([]*judged, 0, len(in.Findings))
	counts := map[catalogv1.Severity]int{}
	for _, f := range in.Findings {
		c := v.summary.Count(f.Severity)
		c.Total++
		if f.FixedVersion != "" {
			c.Fixable++
		}
		j := &judged{f: f, firstSeen: now, counted: !(ignoreUnfixed && f.FixedVersion == "")}
		if t, ok := in.FirstSeen[f.Key()]; ok && !t.IsZero() {
			j.firstSeen = t
		}
		for _, e := range in.Exceptions {
			if !strings.EqualFold(e.ID, f.ID) || !imageMatches(e.Image, in.Image) {
				continue
			}
			if now.Before(e.Expires.Time) {
				if e.Expires.Time.After(j.exceptionExpires) {
					j.exceptionExpires = e.Expires.Time
				}
			} else {
				j.exceptionExpired = true
			}
		}
		if j.counted && j.exceptionExpires.IsZero() {
			counts[f.Severity]++
		}
		js = append(js, j)
	}

	for _, j := range js {
		if !j.counted || !j.exceptionExpires.IsZero() {
			continue
		}
		sev := j.f.Severity
		limit := maxCount.For(sev)
		j.offending = blocked[sev] || (limit != nil && counts[sev] > int(*limit))
		if j.offending && !in.ApprovedAt.IsZero() {
			if w := windows.For(sev); w > 0 {
				j.deadline = j.firstSeen.Add(w)
			}
		}
	}

	// The verdict, its message and the next time it changes by itself.
	var revoking, fixable []*judged
	expiredOnly := true
	v.firstSeen = map[string]time.Time{}
	v.applied = map[string]time.Time{}
	for _, j := range js {
		excepted := !j.exceptionExpires.IsZero()
		if excepted && j.counted {
			if t, ok := v.applied[j.f.ID]; !ok || j.exceptionExpires.After(t) {
				v.applied[j.f.ID] = j.exceptionExpires
			}
		}
		if j.offending || (j.counted && excepted && blocked[j.f.Severity]) {
			v.firstSeen[j.f.Key()] = j.firstSeen
		}
		for _, t := range []time.Time{j.deadline, j.exceptionExpires} {
			if t.IsZero() || !t.After(now) || (t.Equal(j.exceptionExpires) && !blocked[j.f.Severity]) {
				continue
			}
			if v.revokeDeadline.IsZero() || t.Before(v.revokeDeadline) {
				v.revokeDeadline = t
			}
		}
		if j.revokes(now) {
			revoking = append(revoking, j)
			expiredOnly = expiredOnly && j.exceptionExpired
		}
		if j.offending && j.f.FixedVersion != "" {
			fixable = append(fixable, j)
		}
		for _, t := range []time.Time{j.deadline, j.exceptionExpires} {
			if t.After(now) && (v.nextDeadline.IsZero() || t.Before(v.nextDeadline)) {
				v.nextDeadline = t
			}
		}
	}
	sortJudged(revoking)
	sortJudged(fixable)
	switch {
	case len(revoking) == 0:
		v.approved, v.reason = true, catalogv1.PolicyPassedReason
		v.message = "The image meets the policy"
	case expiredOnly:
		v.reason = catalogv1.ExceptionExpiredReason
		v.message = "The exception for " + listFindings(revoking) + " has expired"
	default:
		v.reason = catalogv1.VulnerabilitiesExceedThresholdReason
		v.message = "Vulnerabilities exceed the policy: " + listFindings(revoking)
	}
	if len(fixable) > 0 {
		j := fixable[0]
		v.fixAvailable = fmt.Sprintf("%s in %s %s is fixed in %s", j.f.ID, j.f.Package, j.f.InstalledVersion, j.f.FixedVersion)
		if n := len(fixable) - 1; n > 0 {
			v.fixAvailable += fmt.Sprintf(", and %d more blocking finding(s) have fixes", n)
		}
	}

	// The findings to list: blocking ones first.
	sortJudged(js)
	for _, j := range js[:min(len(js), catalogv1.MaxTopFindings)] {
		f := catalogv1.Finding{
			ID: j.f.ID, Severity: j.f.Severity, Package: j.f.Package,
			InstalledVersion: j.f.InstalledVersion, FixedVersion: j.f.FixedVersion,
			FirstSeen: metav1.NewTime(j.firstSeen), Blocking: j.offending,
		}
		if !j.deadline.IsZero() {
			f.Deadline = &metav1.Time{Time: j.deadline}
		}
		if !j.exceptionExpires.IsZero() {
			f.ExceptionExpires = &metav1.Time{Time: j.exceptionExpires}
		}
		v.top = append(v.top, f)
	}
	return v
}

// sortJudged orders findings: offending first, then by deadline (none
// last), first detection, severity, id and package.
func sortJudged(js []*judged) {
	sort.SliceStable(js, func(a, b int) bool {
		x, y := js[a], js[b]
		if x.offending != y.offending {
			return x.offending
		}
		if !x.deadline.Equal(y.deadline) {
			if x.deadline.IsZero() || y.deadline.IsZero() {
				return y.deadline.IsZero()
			}
			return x.deadline.Before(y.deadline)
		}
		if ra, rb := severityRank(x.f.Severity), severityRank(y.f.Severity); ra != rb {
			return ra < rb
		}
		if !x.firstSeen.Equal(y.firstSeen) {
			return x.firstSeen.Before(y.firstSeen)
		}
		if x.f.ID != y.f.ID {
			return x.f.ID < y.f.ID
		}
		return x.f.Package < y.f.Package
	})
}

// listFindings names up to three findings and counts the rest.
func listFindings(js []*judged) string {
	var parts []string
	for _, j := range js[:min(3, len(js))] {
		parts = append(parts, fmt.Sprintf("%s (%s, %s)", j.f.ID, j.f.Severity, j.f.Package))
	}
	s := strings.Join(parts, ", ")
	if n := len(js) - 3; n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	return s
}

// imageMatches reports whether an exception's image glob covers image. An
// empty glob covers every image; a malformed one covers none.
func imageMatches(glob, image string) bool {
	if glob == "" {
		return true
	}
	ok, err := path.Match(glob, image)
	return err == nil && ok
}
