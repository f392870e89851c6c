package rebuild

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func samplePayload() Payload {
	deadline := time.Date(2026, 12, 24, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	return Payload{
		ID:             "0b6f1c1e-5c6a-4a57-9d0b-7f3a1f3c2e11",
		Event:          EventStale,
		Reason:         "FixAvailable",
		Message:        "CVE-2026-0001 has a fix; rebuild before the remediation window closes",
		Namespace:      "platform",
		Name:           "python",
		Image:          "registry.example.com/base/python:3.13-slim",
		Digest:         "sha256:1111111111111111111111111111111111111111111111111111111111111111",
		ApprovedDigest: "sha256:2222222222222222222222222222222222222222222222222222222222222222",
		UpstreamDigest: "sha256:3333333333333333333333333333333333333333333333333333333333333333",
		Policy:         "default",
		Deadline:       &deadline,
		BlockingCVEs:   []string{"CVE-2026-0001", "CVE-2026-0002"},
		Time:           time.Date(2026, 11, 30, 9, 30, 0, 0, time.FixedZone("CET", 3600)),
	}
}

func TestBodyGeneric(t *testing.T) {
	p := samplePayload()
	for _, f := range []Format{FormatGeneric, ""} {
		b, err := Body(f, p)
		if err != nil {
			t.Fatalf("Body(%q): %v", f, err)
		}
		var fields map[string]any
		if err := json.Unmarshal(b, &fields); err != nil {
			t.Fatal(err)
		}
		if fields["time"] != "2026-11-30T08:30:00Z" || fields["deadline"] != "2026-12-24T11:00:00Z" {
			t.Errorf("times not in UTC: time %v, deadline %v", fields["time"], fields["deadline"])
		}
		var got Payload
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(p.normalized(), got); diff != "" {
			t.Errorf("decoded payload differs (-want +got):\n%s", diff)
		}
	}
}

func TestBodyOmitsEmptyOptionalFields(t *testing.T) {
	b, err := Body(FormatGeneric, Payload{ID: "x", Event: EventApprovalLost, Time: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"x","event":"ApprovalLost","reason":"","namespace":"","name":"","image":"","policy":"","time":"1970-01-01T00:00:00Z"}`
	if string(b) != want {
		t.Errorf("Body =\n%s\nwant\n%s", b, want)
	}
}

func TestBodyRepositoryDispatch(t *testing.T) {
	events := map[string]string{
		EventStale:             "plinth-stale",
		EventApprovalLost:      "plinth-approvallost",
		EventApprovalRevoked:   "plinth-approvalrevoked",
		EventExceptionExpiring: "plinth-exceptionexpiring",
	}
	for event, eventType := range events {
		p := samplePayload()
		p.Event = event
		b, err := Body(FormatRepositoryDispatch, p)
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			EventType     string                     `json:"event_type"`
			ClientPayload map[string]json.RawMessage `json:"client_payload"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		if raw.EventType != eventType {
			t.Errorf("event_type = %q, want %q", raw.EventType, eventType)
		}
		// GitHub refuses a client_payload with more than 10 top-level properties.
		if n := len(raw.ClientPayload); n > 10 {
			t.Errorf("client_payload has %d top-level properties, GitHub accepts at most 10", n)
		}
		var got Payload
		if err := json.Unmarshal(raw.ClientPayload["plinth"], &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(p.normalized(), got); diff != "" {
			t.Errorf("client_payload.plinth differs (-want +got):\n%s", diff)
		}
	}
}

func TestBodyCapsBlockingCVEs(t *testing.T) {
	p := samplePayload()
	p.BlockingCVEs = nil
	for i := range 250 {
		p.BlockingCVEs = append(p.BlockingCVEs, fmt.Sprintf("CVE-2026-%05d", i))
	}
	b, err := Body(FormatGeneric, p)
	if err != nil {
		t.Fatal(err)
	}
	var got Payload
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.BlockingCVEs) != MaxBlockingCVEs || got.BlockingCVEs[0] != "CVE-2026-00000" {
		t.Errorf("got %d CVEs starting %q, want the first %d", len(got.BlockingCVEs), got.BlockingCVEs[0], MaxBlockingCVEs)
	}
	if len(p.BlockingCVEs) != 250 {
		t.Errorf("Body changed the caller's slice")
	}
}

func TestBodyRefusesBadInput(t *testing.T) {
	ok := samplePayload()
	with := func(change func(*Payload)) Payload {
		p := ok
		change(&p)
		return p
	}
	tests := []struct {
		name   string
		format Format
		p      Payload
		want   string
	}{
		{"unknown format", "Slack", ok, `unknown format "Slack"`},
		{"empty id", FormatGeneric, with(func(p *Payload) { p.ID = "" }), "id is empty"},
		{"id with a newline", FormatGeneric, with(func(p *Payload) { p.ID = "a\r\nX-Evil: 1" }), "id has characters"},
		{"id with a space", FormatGeneric, with(func(p *Payload) { p.ID = "a b" }), "id has characters"},
		{"id too long", FormatGeneric, with(func(p *Payload) { p.ID = strings.Repeat("a", 257) }), "id is longer"},
		{"empty event", FormatGeneric, with(func(p *Payload) { p.Event = "" }), "event is empty"},
		{"event too long for GitHub", FormatRepositoryDispatch, with(func(p *Payload) { p.Event = strings.Repeat("E", 94) }), "event is longer"},
		{"body too large", FormatGeneric, with(func(p *Payload) { p.Message = strings.Repeat("m", MaxBodyBytes) }), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Body(tt.format, tt.p)
			if !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Body error = %v, want ErrInvalidPayload saying %q", err, tt.want)
			}
		})
	}
}

func TestBodyIsDeterministic(t *testing.T) {
	a, err := Body(FormatRepositoryDispatch, samplePayload())
	if err != nil {
		t.Fatal(err)
	}
	p := samplePayload()
	p.Time = p.Time.In(time.UTC)
	b, err := Body(FormatRepositoryDispatch, p)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("the same instant in two time zones gave two bodies:\n%s\n%s", a, b)
	}
}
