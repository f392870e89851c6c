package scan

import (
	"fmt"
	"sync"
	"time"
)

// Progress watches scans for stalls: it counts the scans pending (waiting
// for a slot or running) and remembers when any of them last made
// progress (finished, or read layer bytes). The zero value is ready to
// use; it is safe for concurrent use.
type Progress struct {
	mu      sync.Mutex
	pending int
	last    time.Time
}

// Start records a scan becoming pending at now. The first pending scan
// after an idle period starts the stall clock afresh.
func (p *Progress) Start(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == 0 {
		p.last = now
	}
	p.pending++
}

// Advance records progress at now, such as layer bytes read.
func (p *Progress) Advance(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.After(p.last) {
		p.last = now
	}
}

// Finish records a pending scan ending at now, with or without success.
func (p *Progress) Finish(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending > 0 {
		p.pending--
	}
	if now.After(p.last) {
		p.last = now
	}
}

// Pending is the number of scans waiting or running.
func (p *Progress) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending
}

// Health returns an error when scans are pending and none has made
// progress for longer than maxStall at now; nil otherwise.
func (p *Progress) Health(now time.Time, maxStall time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == 0 {
		return nil
	}
	if stalled := now.Sub(p.last); stalled > maxStall {
		return fmt.Errorf("%d scans pending and none made progress for %s", p.pending, stalled.Truncate(time.Second))
	}
	return nil
}
