package e2e

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer collects a process's output. The exec package copies into it
// from its own goroutine while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// playgroundProcess is a running playground and its combined output.
type playgroundProcess struct {
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // its exit status, once done is closed
}

// startPlayground runs the playground binary with args and the environment
// variables env added to the test's. When the test ends it is interrupted,
// as a user stops it, and killed only if it has not stopped 30 s later: a
// killed playground leaves its control plane running.
func startPlayground(t *testing.T, playground string, env []string, args ...string) *playgroundProcess {
	t.Helper()
	p := &playgroundProcess{cmd: exec.Command(playground, args...), output: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	// The operator inherits the output; do not wait for it forever.
	p.cmd.WaitDelay = 20 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// interrupt sends Ctrl-C and fails the test unless the playground then exits
// cleanly within a minute.
func (p *playgroundProcess) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("playground exited with %v\n%s", p.err, p.output.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("playground did not stop\n%s", p.output.String())
	}
}

// lastTable returns the rows of the last catalog table the playground
// printed, as maps from column name to cell, and its header's column names.
func lastTable(output string) (header []string, rows []map[string]string) {
	lines := strings.Split(output, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "NAME ") {
			start = i
		}
	}
	if start < 0 {
		return nil, nil
	}
	// kubectl's layout: each column starts where its header does.
	h := lines[start]
	cols := []string{"NAME", "IMAGE", "APPROVED", "STALE", "CRITICAL", "HIGH", "IMAGE AGE", "SIGNED", "READY"}
	var offsets []int
	for _, c := range cols {
		i := strings.Index(h, c+" ")
		if c == "READY" {
			i = strings.LastIndex(h, c)
		}
		if i < 0 {
			return []string{h}, nil
		}
		offsets = append(offsets, i)
		header = append(header, c)
	}
	if strings.Join(strings.Fields(h), " ") != strings.Join(strings.Fields(strings.Join(cols, " ")), " ") {
		return []string{h}, nil
	}
	for _, l := range lines[start+1:] {
		if strings.TrimSpace(l) == "" || len(l) < offsets[len(offsets)-1] {
			break
		}
		row := map[string]string{}
		for j, c := range cols {
			end := len(l)
			if j+1 < len(cols) {
				end = min(offsets[j+1], len(l))
			}
			row[c] = strings.TrimSpace(l[offsets[j]:end])
		}
		rows = append(rows, row)
	}
	return header, rows
}
