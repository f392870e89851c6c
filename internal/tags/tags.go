// Package tags chooses the tag a BaseImage follows from a repository's tag
// list: the newest version within a semver range, optionally read out of
// tags such as 3.13.2-slim-bookworm by a regular expression.
package tags

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Policy picks the newest tag whose version is within a range.
type Policy struct {
	constraints *semver.Constraints
	filter      *regexp.Regexp
	extract     string
}

// Compile checks and prepares a policy: rng is a semver range such as
// ">=3.13.0 <3.14.0"; pattern, when not empty, is a regular expression tags
// must match, and extract a template ($1, ${name}) of the version within the
// tag (default: the whole tag, or the first group when the pattern has one).
func Compile(rng, pattern, extract string) (*Policy, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return nil, fmt.Errorf("invalid semver range %q: %v", rng, err)
	}
	p := &Policy{constraints: c, extract: extract}
	if pattern != "" {
		if p.filter, err = regexp.Compile(pattern); err != nil {
			return nil, fmt.Errorf("invalid filterTags pattern %q: %v", pattern, err)
		}
		if p.extract == "" && p.filter.NumSubexp() > 0 {
			p.extract = "$1"
		}
	} else if extract != "" {
		return nil, errors.New("filterTags.extract needs filterTags.pattern")
	}
	return p, nil
}

// Chooser keeps the newest matching tag of those it is shown, and nothing
// else, so a huge tag list costs no memory.
type Chooser struct {
	p        *Policy
	best     *semver.Version
	bestTag  string
	seen     int
	versions int
}

// Chooser starts a choice.
func (p *Policy) Chooser() *Chooser { return &Chooser{p: p} }

// Consider looks at one tag.
func (c *Chooser) Consider(tag string) {
	c.seen++
	v, ok := c.p.version(tag)
	if !ok {
		return
	}
	c.versions++
	if !c.p.constraints.Check(v) {
		return
	}
	// The newest version wins; between tags of one version, the shortest
	// (3.13.2 before 3.13.2-r0-build), then the first in order.
	if c.best == nil || v.GreaterThan(c.best) || (v.Equal(c.best) && len(tag) < len(c.bestTag)) {
		c.best, c.bestTag = v, tag
	}
}

// Best returns the chosen tag and its version, or ok false when no tag
// matched.
func (c *Chooser) Best() (tag, version string, ok bool) {
	if c.best == nil {
		return "", "", false
	}
	return c.bestTag, c.best.String(), true
}

// Counts says how many tags were seen and how many carried a version.
func (c *Chooser) Counts() (seen, versions int) { return c.seen, c.versions }

// version reads the version of a tag, if it has one.
func (p *Policy) version(tag string) (*semver.Version, bool) {
	s := tag
	if p.filter != nil {
		m := p.filter.FindStringSubmatchIndex(tag)
		if m == nil {
			return nil, false
		}
		if p.extract != "" {
			s = string(p.filter.ExpandString(nil, p.extract, tag, m))
		}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, false
	}
	v, err := semver.NewVersion(s)
	if err != nil {
		return nil, false
	}
	return v, true
}

// Mutable tells whether a tag names no version: latest, or a tag without
// a digit (stable, edge, bookworm-slim). Such a tag moves without notice.
func Mutable(tag string) bool {
	if strings.EqualFold(tag, "latest") {
		return true
	}
	return !strings.ContainsAny(tag, "0123456789")
}
