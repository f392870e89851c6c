package tags

import (
	"fmt"
	"testing"
)

func choose(t *testing.T, rng, pattern, extract string, tags ...string) string {
	t.Helper()
	p, err := Compile(rng, pattern, extract)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Chooser()
	for _, tag := range tags {
		c.Consider(tag)
	}
	best, _, _ := c.Best()
	return best
}

func TestTheNewestTagInTheRangeIsChosen(t *testing.T) {
	tags := []string{"latest", "3.12.9", "3.13.0", "3.13.10", "3.13.2", "3.14.0", "3.13.11-rc1", "bookworm", "3.13"}
	if got := choose(t, ">=3.13.0 <3.14.0", "", "", tags...); got != "3.13.10" {
		t.Errorf("got %q, want 3.13.10 (numeric order, no prerelease)", got)
	}
	if got := choose(t, ">=4.0.0", "", "", tags...); got != "" {
		t.Errorf("a range that matches nothing chose %q", got)
	}
}

func TestVersionsAreReadOutOfTagsByTheFilter(t *testing.T) {
	tags := []string{"3.13.2-slim-bookworm", "3.13.9-slim-bookworm", "3.13.12-bookworm", "3.13.10-slim-bullseye", "3.13.11-slim-bookworm-rc"}
	got := choose(t, "~3.13", `^(?P<v>\d+\.\d+\.\d+)-slim-bookworm$`, "${v}", tags...)
	if got != "3.13.9-slim-bookworm" {
		t.Errorf("got %q", got)
	}
	// Without extract, the first group is the version.
	if got := choose(t, "~3.13", `^(\d+\.\d+\.\d+)-slim-bookworm$`, "", tags...); got != "3.13.9-slim-bookworm" {
		t.Errorf("first group: got %q", got)
	}
}

func TestBadPoliciesAreRefusedClearly(t *testing.T) {
	for _, c := range []struct{ rng, pattern, extract string }{
		{"not a range", "", ""},
		{">=1.0.0", "([", ""},
		{">=1.0.0", "", "$1"},
	} {
		if _, err := Compile(c.rng, c.pattern, c.extract); err == nil {
			t.Errorf("%+v was accepted", c)
		}
	}
}

func TestFiveThousandTagsKeepOnlyTheBest(t *testing.T) {
	p, err := Compile(">=1.2.0 <1.3.0", "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Chooser()
	for i := range 5000 {
		c.Consider(fmt.Sprintf("1.%d.%d", i/100, i%100))
	}
	if best, v, _ := c.Best(); best != "1.2.99" || v != "1.2.99" {
		t.Errorf("got %s (%s)", best, v)
	}
	if seen, versions := c.Counts(); seen != 5000 || versions != 5000 {
		t.Errorf("counts %d %d", seen, versions)
	}
}

func TestMutableTags(t *testing.T) {
	for tag, want := range map[string]bool{"latest": true, "LATEST": true, "stable": true, "bookworm-slim": true,
		"3.13-slim": false, "12": false, "v1": false, "2024-06-01": false} {
		if Mutable(tag) != want {
			t.Errorf("Mutable(%q) = %v", tag, !want)
		}
	}
}
