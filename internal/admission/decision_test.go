package admission

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/plinth-dev/plinth/internal/catalog"
)

func TestDecide(t *testing.T) {
	python := catalog.Alternative{BaseImage: types.NamespacedName{Namespace: "platform", Name: "python"}, Image: "registry.example.com/base/python:3.13"}
	approved := verdict{Image: "r/app:1", Paths: []string{"containers[0] (app)"}, Result: catalog.Result{Class: catalog.Approved}}
	unapproved := verdict{Image: "r/cart:1", Paths: []string{"containers[1] (cart)"},
		Result: catalog.Result{Class: catalog.Unapproved, Reason: "matches no base in the catalog", Alternatives: []catalog.Alternative{python}}}
	superseded := verdict{Image: "r/old:1", Paths: []string{"initContainers[0]"},
		Result: catalog.Result{Class: catalog.Superseded, Reason: "on an older digest of platform/python", Alternatives: []catalog.Alternative{python}}}
	unknown := verdict{Image: "slow.example.com/app:1", Paths: []string{"containers[2]"},
		Result: catalog.Result{Class: catalog.Unknown, Reason: "the image's tag could not be resolved before the deadline"}}
	invalid := verdict{Image: "r/App:1", Paths: []string{"containers[3]"}, Invalid: errors.New("repository paths must be lower case")}

	for _, tt := range []struct {
		name     string
		mode     Mode
		policy   UnknownPolicy
		in       []verdict
		allowed  bool
		decision string
		class    string
		says     []string // in the message, or else in the warnings
	}{
		{"approved only", Enforce, AllowUnknown, []verdict{approved}, true, decisionAllow, classApproved, nil},
		{"no images", Enforce, AllowUnknown, nil, true, decisionAllow, classApproved, nil},
		{"enforce unapproved", Enforce, AllowUnknown, []verdict{approved, unapproved}, false, decisionDeny, classUnapproved,
			[]string{`image "r/cart:1" in containers[1] (cart) is not on an approved base (matches no base in the catalog)`, "registry.example.com/base/python:3.13"}},
		{"enforce superseded", Enforce, AllowUnknown, []verdict{superseded}, false, decisionDeny, classSuperseded, []string{"older digest", "python:3.13"}},
		{"enforce invalid", Enforce, AllowUnknown, []verdict{invalid}, false, decisionDeny, classUnapproved, []string{"not a valid image reference", "lower case"}},
		{"enforce unknown allowed", Enforce, AllowUnknown, []verdict{approved, unknown}, true, decisionWarn, classUnknown, []string{"could not be checked", "before the deadline"}},
		{"enforce unknown denied", Enforce, DenyUnknown, []verdict{unknown}, false, decisionDeny, classUnknown, []string{"could not be checked"}},
		{"enforce worst wins", Enforce, AllowUnknown, []verdict{unknown, superseded, unapproved}, false, decisionDeny, classUnapproved, []string{"r/old:1", "r/cart:1"}},
		{"warn", Warn, AllowUnknown, []verdict{unapproved, unknown}, true, decisionWarn, classUnapproved, []string{"r/cart:1", "slow.example.com"}},
		{"warn ignores deny policy", Warn, DenyUnknown, []verdict{unknown}, true, decisionWarn, classUnknown, []string{"could not be checked"}},
		{"audit", Audit, DenyUnknown, []verdict{unapproved, unknown}, true, decisionAllow, classUnapproved, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(tt.mode, tt.policy, tt.in)
			if d.Allowed != tt.allowed || d.Decision != tt.decision || d.Class != tt.class {
				t.Errorf("got allowed=%v decision=%s class=%s, want %v %s %s", d.Allowed, d.Decision, d.Class, tt.allowed, tt.decision, tt.class)
			}
			text := d.Message + strings.Join(d.Warnings, "\n")
			for _, s := range tt.says {
				if !strings.Contains(text, s) {
					t.Errorf("answer %q does not say %q", text, s)
				}
			}
			if tt.allowed && d.Message != "" {
				t.Errorf("an admitted request has a message: %s", d.Message)
			}
			if tt.mode == Audit && len(d.Warnings) > 0 {
				t.Errorf("audit mode warns: %v", d.Warnings)
			}
		})
	}
}

func TestAnswersStayShortForHugeSpecs(t *testing.T) {
	var vs []verdict
	for i := range 200 {
		vs = append(vs, verdict{Image: fmt.Sprintf("r/app-%d:1", i), Paths: []string{"containers[0]", "containers[1]", "containers[2]", "containers[3]"},
			Result: catalog.Result{Class: catalog.Unapproved, Reason: "matches no base in the catalog"}})
	}
	d := decide(Enforce, AllowUnknown, vs)
	if !strings.Contains(d.Message, "and 195 more images") || strings.Count(d.Message, `image "`) != maxImagesInMessage {
		t.Errorf("denial names too many or too few images: %s", d.Message)
	}
	if !strings.Contains(d.Message, "and 1 more containers") {
		t.Errorf("denial does not shorten the container list: %s", d.Message)
	}
	w := decide(Warn, AllowUnknown, vs).Warnings
	if len(w) != maxWarnings || !strings.Contains(w[len(w)-1], "191 more images") {
		t.Errorf("%d warnings, last %q; want %d ending with a count", len(w), w[len(w)-1], maxWarnings)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"enforce": Enforce, "warn": Warn, "audit": Audit, " warn ": Warn, "Enforce": "", "": "", "block": ""} {
		if got, _ := ParseMode(in); got != want {
			t.Errorf("ParseMode(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := ParseUnknownPolicy("maybe"); err == nil {
		t.Error("ParseUnknownPolicy accepted maybe")
	}
}
