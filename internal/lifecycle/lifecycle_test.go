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
	g.OnReady = func() {
		onReady.Add(1)
		cancel()
	}
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
	g.OnReady = func() { t.Error("OnReady called though a never became ready") }
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
			g.OnReady = func() {}
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
	g.OnReady = cancel
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
