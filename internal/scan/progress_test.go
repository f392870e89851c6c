package scan

import (
	"testing"
	"time"
)

func TestProgressHealth(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)
	var p Progress
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const stall = 5 * time.Minute

	if err := p.Health(at(time.Hour), stall); err != nil {
		t.Fatalf("idle: %v", err)
	}
	// A scan queued after a long idle period is not stalled at once.
	p.Start(at(time.Hour))
	if err := p.Health(at(time.Hour+time.Minute), stall); err != nil {
		t.Errorf("fresh scan: %v", err)
	}
	// Layer bytes keep it healthy.
	p.Advance(at(time.Hour + 4*time.Minute))
	if err := p.Health(at(time.Hour+8*time.Minute), stall); err != nil {
		t.Errorf("progressing scan: %v", err)
	}
	// Nothing for longer than maxStall: unhealthy.
	if err := p.Health(at(time.Hour+9*time.Minute+time.Second), stall); err == nil {
		t.Error("stalled scan reported healthy")
	}
	// A second scan queued meanwhile does not reset the clock.
	p.Start(at(time.Hour + 9*time.Minute))
	if err := p.Health(at(time.Hour+10*time.Minute), stall); err == nil {
		t.Error("a new waiting scan hid the stall")
	}
	// One finishing counts as progress; the other is still pending.
	p.Finish(at(time.Hour + 10*time.Minute))
	if p.Pending() != 1 {
		t.Errorf("pending = %d, want 1", p.Pending())
	}
	if err := p.Health(at(time.Hour+14*time.Minute), stall); err != nil {
		t.Errorf("after a finish: %v", err)
	}
	if err := p.Health(at(time.Hour+16*time.Minute), stall); err == nil {
		t.Error("remaining scan stalled but reported healthy")
	}
	p.Finish(at(time.Hour + 30*time.Minute))
	if err := p.Health(at(3*time.Hour), stall); err != nil {
		t.Errorf("no scan pending: %v", err)
	}
}
