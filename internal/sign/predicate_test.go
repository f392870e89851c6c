package sign

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestApprovalJSON(t *testing.T) {
	at := time.Date(2026, 8, 14, 11, 0, 0, 500, time.FixedZone("CEST", 2*3600))
	a := Approval{
		Policy: "base-images", PolicyGeneration: 7, Verdict: VerdictApproved, Digest: "sha256:" + strings.Repeat("a", 64),
		VulnDBVersion: "2026-08-13T06:12:44Z",
		Exceptions: []AppliedException{
			{ID: "CVE-2026-9", Expires: at.Add(48 * time.Hour)},
			{ID: "CVE-2026-1", Expires: at.Add(24 * time.Hour)},
		},
		ApprovedAt: at, ValidUntil: at.Add(24 * time.Hour),
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"policy":{"name":"base-images","generation":7},"verdict":"approved","digest":"sha256:` + strings.Repeat("a", 64) +
		`","vulnDBVersion":"2026-08-13T06:12:44Z","exceptions":[{"id":"CVE-2026-1","expires":"2026-08-15T09:00:00Z"},` +
		`{"id":"CVE-2026-9","expires":"2026-08-16T09:00:00Z"}],"approvedAt":"2026-08-14T09:00:00Z","validUntil":"2026-08-15T09:00:00Z"}`
	if string(b) != want {
		t.Errorf("approval JSON\n got %s\nwant %s", b, want)
	}
	var back Approval
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.ValidUntil.Equal(a.ValidUntil.Truncate(time.Second)) || back.Policy != a.Policy || len(back.Exceptions) != 2 || back.Exceptions[0].ID != "CVE-2026-1" {
		t.Errorf("round trip: %+v", back)
	}

	none, _ := json.Marshal(Approval{Verdict: VerdictApproved})
	if !strings.Contains(string(none), `"exceptions":[]`) {
		t.Errorf("no exceptions: %s, want an empty list", none)
	}
}

func TestVulnPredicateIgnoresFindingOrder(t *testing.T) {
	sc := Scanner{Name: "trivy", Version: "0.74.0", DBVersion: "2026-08-13T06:12:44Z"}
	fs := testPublication(judged).Findings
	a, err := vulnPredicate(sc, fs, judged)
	if err != nil {
		t.Fatal(err)
	}
	b, err := vulnPredicate(sc, []Finding{fs[1], fs[0]}, judged)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("findings in another order give other bytes:\n%s\n%s", a, b)
	}
	var p struct {
		Scanner struct {
			URI    string
			DB     struct{ Version string }
			Result struct{ Findings []Finding }
		}
		Metadata struct{ ScanFinishedOn time.Time }
	}
	if err := json.Unmarshal(a, &p); err != nil {
		t.Fatal(err)
	}
	if p.Scanner.URI != "trivy" || p.Scanner.DB.Version != sc.DBVersion || len(p.Scanner.Result.Findings) != 2 ||
		p.Scanner.Result.Findings[0].ID != "CVE-2026-0001" || !p.Metadata.ScanFinishedOn.Equal(judged) {
		t.Errorf("vuln predicate %s", a)
	}
	empty, _ := vulnPredicate(sc, nil, judged)
	if !strings.Contains(string(empty), `"findings":[]`) {
		t.Errorf("no findings: %s, want an empty list", empty)
	}
}

func TestStatementsNameTheImage(t *testing.T) {
	hex := strings.Repeat("b", 64)
	for _, typ := range []string{PredicateTypeApproval, "vuln", "cyclonedx"} {
		st, err := statement(typ, []byte(`{"a":1}`), "127.0.0.1:5000/base/alpine", hex)
		if err != nil {
			t.Fatal(err)
		}
		var s statementJSON
		if err := json.Unmarshal(st, &s); err != nil {
			t.Fatal(err)
		}
		if len(s.Subject) != 1 || s.Subject[0].Name != "127.0.0.1:5000/base/alpine" || s.Subject[0].Digest["sha256"] != hex {
			t.Errorf("%s statement subject %+v", typ, s.Subject)
		}
		wantType := map[string]string{"vuln": PredicateTypeVuln, "cyclonedx": PredicateTypeCycloneDX}[typ]
		if wantType == "" {
			wantType = typ
		}
		if s.PredicateType != wantType {
			t.Errorf("predicate type %q, want %q", s.PredicateType, wantType)
		}
	}
}
