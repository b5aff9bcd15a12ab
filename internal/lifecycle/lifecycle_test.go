package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// events records what the fake components did, in order.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// fake is a Component. Its Run records "start <name>", then either returns
// err at once (fail), panics, or blocks until its context ends (or, with
// ignoreCancel, until release is closed) and records "stop <name>".
type fake struct {
	name         string
	ev           *events
	started      chan struct{} // closed once Run has begun
	fail         error
	panics       bool
	ignoreCancel <-chan struct{}
}

func newFake(name string, ev *events) *fake {
	return &fake{name: name, ev: ev, started: make(chan struct{})}
}

func (f *fake) Name() string { return f.name }

func (f *fake) Run(ctx context.Context) error {
	f.ev.add("start " + f.name)
	close(f.started)
	switch {
	case f.panics:
		panic("kaboom")
	case f.fail != nil:
		return f.fail
	case f.ignoreCancel != nil:
		<-f.ignoreCancel
	default:
		<-ctx.Done()
	}
	f.ev.add("stop " + f.name)
	return nil
}

// readyFake is a fake that is also a Readier: ready once Run has started and
// ready is closed (a nil ready means ready as soon as Run starts).
type readyFake struct {
	*fake
	ready chan struct{}
}

func (r readyFake) WaitReady(ctx context.Context) error {
	for _, ch := range []chan struct{}{r.started, r.ready} {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

func newGroup(cs ...Component) *Group {
	return NewGroup(slog.New(slog.DiscardHandler), cs...)
}

// runGroup runs g in the background and returns a channel with its result.
func runGroup(ctx context.Context, g *Group) <-chan error {
	res := make(chan error, 1)
	go func() { res <- g.Run(ctx) }()
	return res
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func TestStartInOrderStopInReverse(t *testing.T) {
	ev := &events{}
	a, b, c := newFake("a", ev), newFake("b", ev), newFake("c", ev)
	g := newGroup(readyFake{fake: a}, readyFake{fake: b}, readyFake{fake: c})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var onReady atomic.Int32
	var order []string
	g.OnReady(func() { order = append(order, "first") })
	g.OnReady(func() {
		order = append(order, "second")
		onReady.Add(1)
		cancel()
	})
	if err := wait(t, runGroup(ctx, g), "Run"); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}
	if got := ev.get(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if n := onReady.Load(); n != 1 {
		t.Errorf("OnReady called %d times, want 1", n)
	}
	if want := []string{"first", "second"}; !slices.Equal(order, want) {
		t.Errorf("hooks ran %q, want %q", order, want)
	}
}

func TestWaitReadyGatesNextStart(t *testing.T) {
	ev := &events{}
	a, b := newFake("a", ev), newFake("b", ev)
	ra := readyFake{fake: a, ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res := runGroup(ctx, newGroup(ra, b))

	wait(t, a.started, "a to start")
	select {
	case <-b.started:
		t.Fatal("b started before a was ready")
	case <-time.After(100 * time.Millisecond):
	}
	close(ra.ready)
	wait(t, b.started, "b to start after a is ready")
	cancel()
	if err := wait(t, res, "Run"); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestCancelBeforeReadyReturnsNil(t *testing.T) {
	ev := &events{}
	a, b := newFake("a", ev), newFake("b", ev)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	g := newGroup(readyFake{fake: a, ready: make(chan struct{})}, b)
	g.OnReady(func() { t.Error("OnReady called though a never became ready") })
	res := runGroup(ctx, g)
	wait(t, a.started, "a to start")
	cancel()
	if err := wait(t, res, "Run"); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if got, want := ev.get(), []string{"start a", "stop a"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestComponentFailure(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		// build returns the components; bad is the one that goes wrong.
		build    func(ev *events) []Component
		want     []string // parts of the error
		stopped  []string // events that must have happened
		readyMax time.Duration
	}{
		{
			name: "run returns error",
			build: func(ev *events) []Component {
				bad := newFake("bad", ev)
				bad.fail = boom
				return []Component{newFake("a", ev), bad, newFake("c", ev)}
			},
			want:    []string{"bad", "boom"},
			stopped: []string{"stop a", "stop c"},
		},
		{
			name: "run returns nil without being asked",
			build: func(ev *events) []Component {
				bad := newFake("bad", ev)
				bad.ignoreCancel = closed()
				return []Component{newFake("a", ev), bad}
			},
			want:    []string{"bad", "stopped unexpectedly"},
			stopped: []string{"stop a"},
		},
		{
			name: "panic",
			build: func(ev *events) []Component {
				bad := newFake("bad", ev)
				bad.panics = true
				return []Component{newFake("a", ev), bad, newFake("c", ev)}
			},
			want:    []string{"bad", "panic: kaboom"},
			stopped: []string{"stop a", "stop c"},
		},
		{
			name: "earlier component fails while next is waiting to be ready",
			build: func(ev *events) []Component {
				bad := newFake("bad", ev)
				bad.fail = boom
				return []Component{newFake("a", ev), bad, readyFake{fake: newFake("c", ev), ready: make(chan struct{})}, newFake("d", ev)}
			},
			want:    []string{"bad", "boom"},
			stopped: []string{"stop a", "stop c"},
		},
		{
			name: "never ready",
			build: func(ev *events) []Component {
				return []Component{newFake("a", ev), readyFake{fake: newFake("slow", ev), ready: make(chan struct{})}, newFake("c", ev)}
			},
			readyMax: 100 * time.Millisecond,
			want:     []string{"slow", "not ready after 100ms"},
			stopped:  []string{"stop a", "stop slow"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			g := newGroup(tc.build(ev)...)
			if tc.readyMax != 0 {
				g.ReadyTimeout = tc.readyMax
			}
			g.OnReady(func() {})
			err := wait(t, runGroup(t.Context(), g), "Run")
			if err == nil {
				t.Fatal("Run = nil, want an error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			got := ev.get()
			for _, want := range tc.stopped {
				if !slices.Contains(got, want) {
					t.Errorf("events %q lack %q", got, want)
				}
			}
			if slices.Contains(got, "start d") {
				t.Errorf("events %q: d started after an earlier failure", got)
			}
		})
	}
}

func closed() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func TestStopDoesNotWaitBeyondGrace(t *testing.T) {
	ev := &events{}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // lets the stuck Run end, for goleak
	a, stuck := newFake("a", ev), newFake("stuck", ev)
	stuck.ignoreCancel = release
	g := newGroup(readyFake{fake: a}, readyFake{fake: stuck})
	g.Grace = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	g.OnReady(cancel)
	start := time.Now()
	if err := wait(t, runGroup(ctx, g), "Run to give up on the stuck component"); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if took := time.Since(start); took < g.Grace {
		t.Errorf("Run returned after %s, before the grace period %s", took, g.Grace)
	}
	if got, want := ev.get(), []string{"start a", "start stuck", "stop a"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestReadySignal(t *testing.T) {
	r := NewReadySignal()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.WaitReady(ctx); err == nil {
		t.Fatal("WaitReady = nil before MarkReady")
	}
	r.MarkReady()
	r.MarkReady() // idempotent
	if err := r.WaitReady(context.Background()); err != nil {
		t.Fatalf("WaitReady after MarkReady = %v", err)
	}
}

// timedFake is a fake with its own ready timeout and stop grace.
type timedFake struct {
	readyFake
	readyIn, graceFor time.Duration
}

func (f timedFake) ReadyTimeout() time.Duration { return f.readyIn }
func (f timedFake) StopGrace() time.Duration    { return f.graceFor }

// A SlowReady or SlowStop component's own bound replaces the group's.
func TestPerComponentTimeouts(t *testing.T) {
	ev := &events{}
	slow := timedFake{readyFake: readyFake{fake: newFake("slow", ev), ready: make(chan struct{})}, readyIn: 50 * time.Millisecond}
	g := newGroup(slow)
	g.ReadyTimeout = time.Hour
	err := wait(t, runGroup(t.Context(), g), "Run")
	if err == nil || !strings.Contains(err.Error(), "slow not ready after 50ms") {
		t.Errorf("Run = %v, want the component's own 50ms ready timeout", err)
	}

	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck := newFake("stuck", ev)
	stuck.ignoreCancel = release
	g = newGroup(timedFake{readyFake: readyFake{fake: stuck}, graceFor: 300 * time.Millisecond})
	g.Grace = time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	g.OnReady(cancel)
	start := time.Now()
	if err := wait(t, runGroup(ctx, g), "Run"); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("stop gave up after %s, before the component's 300ms grace", took)
	}
}

// A restart request stops the group and comes back as it is; the failing
// component's error is Run's alone, not logged again while stopping.
func TestRestartRequestAndSingleReport(t *testing.T) {
	ev := &events{}
	bad := newFake("bad", ev)
	bad.fail = &RestartError{Reason: "new certificates"}
	var logged strings.Builder
	g := NewGroup(slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil)), newFake("a", ev), bad)
	err := wait(t, runGroup(t.Context(), g), "Run")
	var restart *RestartError
	if !errors.As(err, &restart) || restart.Reason != "new certificates" {
		t.Fatalf("Run = %v, want the RestartError", err)
	}
	if !slices.Contains(ev.get(), "stop a") {
		t.Errorf("events %q: a not stopped", ev.get())
	}
	if strings.Contains(logged.String(), "new certificates") {
		t.Errorf("the returned error was also logged:\n%s", logged.String())
	}
}

// syncWriter serialises writes from the group's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// taskFake is a Task that records its run and returns err.
type taskFake struct {
	name string
	ev   *events
	wait <-chan struct{} // nil: done at once
	err  error
}

func (f taskFake) Name() string { return f.name }

func (f taskFake) Do(ctx context.Context) error {
	if f.wait != nil {
		select {
		case <-f.wait:
		case <-ctx.Done():
			return nil
		}
	}
	f.ev.add("did " + f.name)
	return f.err
}

// An awaited task gates the next start; a background one does not; a
// finished task is no failure; a task's error fails the group.
func TestTasks(t *testing.T) {
	ev := &events{}
	later := make(chan struct{})
	next := newFake("next", ev)
	g := newGroup(Await(taskFake{name: "import", ev: ev}), Background(taskFake{name: "uncordon", ev: ev, wait: later}), readyFake{fake: next})
	ctx, cancel := context.WithCancel(t.Context())
	g.OnReady(func() { close(later) })
	res := runGroup(ctx, g)
	wait(t, next.started, "next to start")
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(ev.get(), "did uncordon") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := wait(t, res, "Run"); err != nil {
		t.Errorf("Run = %v, want nil: finished tasks are not failures", err)
	}
	if got, want := ev.get(), []string{"did import", "start next", "did uncordon", "stop next"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}

	boom := errors.New("boom")
	g = newGroup(Await(taskFake{name: "bad", ev: ev, err: boom}), newFake("never", ev))
	if err := wait(t, runGroup(t.Context(), g), "Run"); !errors.Is(err, boom) || !strings.Contains(err.Error(), "bad") {
		t.Errorf("Run = %v, want bad's error", err)
	}
	if slices.Contains(ev.get(), "start never") {
		t.Error("a component started after a failed awaited task")
	}
}

func TestOnStartFailure(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		failAfter bool // b fails once every component is ready
		cancel    bool // a stop asked for before b is ready, no failure
		undo      bool // the hook must run, after every stop
	}{
		{name: "start fails", undo: true},
		{name: "fails once ready", failAfter: true},
		{name: "stop before ready", cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			a, b := newFake("a", ev), newFake("b", ev)
			var second Component = readyFake{fake: b, ready: make(chan struct{})}
			if !tc.cancel {
				b.fail = boom
			}
			if tc.failAfter {
				second = b // not a Readier: counted ready at once, its failure seen after
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			g := newGroup(readyFake{fake: a}, second)
			g.OnReady(func() { ev.add("ready") })
			g.OnStartFailure(func() { ev.add("undo") })
			res := runGroup(ctx, g)
			if tc.cancel {
				wait(t, b.started, "b to start")
				cancel()
			}
			if err := wait(t, res, "Run"); tc.cancel != (err == nil) {
				t.Errorf("Run = %v", err)
			}
			got := ev.get()
			if undone := slices.Contains(got, "undo"); undone != tc.undo {
				t.Errorf("events %q: the start-failure hook ran %v, want %v", got, undone, tc.undo)
			}
			if tc.undo && got[len(got)-1] != "undo" {
				t.Errorf("events %q: the hook must run after every component stopped", got)
			}
			if ready := slices.Contains(got, "ready"); ready != tc.failAfter {
				t.Errorf("events %q: ready %v, want %v", got, ready, tc.failAfter)
			}
		})
	}
}
