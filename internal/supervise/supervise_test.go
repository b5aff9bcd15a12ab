package supervise

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every Run returns with its child reaped and its output readers done.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A child that exits is started again, its output reaches Output, and
// cancelling the context stops the current one.
func TestRestartsAndStops(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	spec := Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", "echo run; exit 3"},
		Grace: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Stable: time.Hour,
		Output: func(l []byte) { mu.Lock(); lines = append(lines, string(l)); mu.Unlock() }}
	p := New(spec, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(lines)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child ran %d times in 10s, want 3 restarts", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	if lines[0] != "run" {
		t.Errorf("output = %q, want lines %q", lines, "run")
	}
}

// A child that ignores SIGTERM is killed after the grace period.
func TestStopKillsAfterGrace(t *testing.T) {
	spec := DefaultSpec("stubborn", "/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done")
	spec.Grace = 200 * time.Millisecond
	up := make(chan struct{}, 1)
	spec.Output = func([]byte) { up <- struct{}{} }
	p := New(spec, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		t.Fatal("child did not start")
	}
	pid := p.PID()
	if pid == 0 {
		t.Fatal("PID() = 0 while the child runs")
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if took := time.Since(start); took < spec.Grace {
		t.Errorf("stopped after %s, before the %s grace period", took, spec.Grace)
	}
	if p.PID() != 0 {
		t.Errorf("PID() = %d after stop, want 0", p.PID())
	}
}

// A child that cannot even start is retried until the context ends.
func TestStartFailureIsRetried(t *testing.T) {
	spec := DefaultSpec("missing", "/nonexistent/binary")
	spec.MinBackoff, spec.MaxBackoff = time.Millisecond, 2*time.Millisecond
	p := New(spec, quiet())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil when ctx ends", err)
	}
}
