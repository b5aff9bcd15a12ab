// Package lifecycle runs a node's long-lived components as one group: it
// starts them in order, waits for each to be ready before starting the next,
// fails fast when one dies, and stops them in reverse order, each within a
// bounded grace period.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Component is a long-running part of the node.
//
// Run blocks until ctx is canceled (a requested stop: return nil) or the
// component fails (return the error). Run is called at most once, from its
// own goroutine.
type Component interface {
	Name() string
	Run(ctx context.Context) error
}

// Readier is implemented by components that others depend on. The group
// starts the next component only after WaitReady returns nil. WaitReady may
// be called concurrently with Run and must return when ctx ends.
type Readier interface {
	WaitReady(ctx context.Context) error
}

// SlowReady is implemented by Readiers that may take longer to be ready
// than the group's ReadyTimeout; ReadyTimeout bounds their WaitReady.
type SlowReady interface {
	ReadyTimeout() time.Duration
}

// SlowStop is implemented by components whose stop takes longer than the
// group's Grace: a child process given its own grace before SIGKILL, a
// store that flushes on close. StopGrace is how long the group waits for
// Run to return once asked to stop.
type SlowStop interface {
	StopGrace() time.Duration
}

// RestartError is a component's request that the whole node restart (for
// example, new certificates that upstream code reads only at start). The
// group stops every component as for a failure and Run returns the
// request, which callers tell from a failure with errors.As.
type RestartError struct{ Reason string }

func (e *RestartError) Error() string { return "restart requested: " + e.Reason }

// Group runs components. The zero value is not usable; use NewGroup.
type Group struct {
	log          *slog.Logger
	components   []Component
	ReadyTimeout time.Duration // per Readier, unless it is SlowReady
	Grace        time.Duration // per component when stopping, unless SlowStop
	onReady      []func()
	onStartFail  []func()
}

// NewGroup returns a group that runs components in the given order.
func NewGroup(log *slog.Logger, components ...Component) *Group {
	return &Group{log: log, components: components, ReadyTimeout: 2 * time.Minute, Grace: 5 * time.Second}
}

// OnReady adds a hook called once every component is ready, after the
// hooks added before it.
func (g *Group) OnReady(hook func()) { g.onReady = append(g.onReady, hook) }

// OnStartFailure adds a hook called when Run fails before every component
// is ready, once the started ones have stopped: where a role puts back
// what its start prepared. A stop asked for (ctx ending) is not a failure.
func (g *Group) OnStartFailure(hook func()) { g.onStartFail = append(g.onStartFail, hook) }

func (g *Group) readyTimeout(c Component) time.Duration {
	if t, ok := c.(SlowReady); ok && t.ReadyTimeout() > 0 {
		return t.ReadyTimeout()
	}
	return g.ReadyTimeout
}

func (g *Group) grace(c Component) time.Duration {
	if t, ok := c.(SlowStop); ok && t.StopGrace() > 0 {
		return t.StopGrace()
	}
	return g.Grace
}

// running is one started component.
type running struct {
	c      Component
	cancel context.CancelFunc
	done   chan struct{}
	err    error // valid after done is closed
}

// Run starts every component and blocks until ctx ends (a clean stop: nil)
// or a component fails or is not ready in time (that error, which the
// group does not log: the caller reports it once). Either way all started
// components are stopped, last-started first, before Run returns.
func (g *Group) Run(ctx context.Context) error {
	failed := make(chan *running, len(g.components))
	started := make([]*running, 0, len(g.components))
	var reported *running // its error is Run's; stop does not log it again
	startFailed := false
	defer func() {
		g.stop(started, reported)
		if startFailed {
			for _, hook := range g.onStartFail {
				hook()
			}
		}
	}()

	for _, c := range g.components {
		if ctx.Err() != nil {
			return nil
		}
		r := g.start(ctx, c, failed)
		started = append(started, r)
		if f, err := g.waitReady(ctx, r, failed); err != nil {
			reported, startFailed = f, true
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	g.log.Info("all components ready")
	for _, hook := range g.onReady {
		hook()
	}
	select {
	case <-ctx.Done():
		return nil
	case r := <-failed:
		reported = r
		return r.failure()
	}
}

// failure is the error Run returns for r: a restart request as it is,
// anything else named by the component.
func (r *running) failure() error {
	if restart := (*RestartError)(nil); errors.As(r.err, &restart) {
		return r.err
	}
	return fmt.Errorf("%s: %w", r.c.Name(), r.err)
}

// start runs c in its own goroutine under its own context, which is not a
// child of ctx: the group cancels each component itself, in reverse order.
func (g *Group) start(ctx context.Context, c Component, failed chan<- *running) *running {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &running{c: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = runSafe(cctx, c)
		if cctx.Err() == nil {
			if r.err == nil {
				r.err = errors.New("stopped unexpectedly")
			}
			failed <- r
		}
	}()
	return r
}

// runSafe turns a panic in c into an error, so one component cannot take the
// process down without the others being stopped.
func runSafe(ctx context.Context, c Component) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return c.Run(ctx)
}

// waitReady waits for r to be ready; it gives up early when r or an
// earlier component fails. On an error it also returns the component whose
// failure the error reports (r itself when it is not ready).
func (g *Group) waitReady(ctx context.Context, r *running, failed <-chan *running) (*running, error) {
	rd, ok := r.c.(Readier)
	if !ok {
		return nil, nil
	}
	start := time.Now()
	g.log.Info("waiting for " + r.c.Name())
	timeout := g.readyTimeout(r.c)
	wctx, cancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("%s not ready after %s", r.c.Name(), timeout))
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- rd.WaitReady(wctx) }()
	select {
	case err := <-result:
		if err != nil && ctx.Err() == nil {
			return r, fmt.Errorf("%s: %w", r.c.Name(), err) // r's own failure, if any, is this one
		}
	case f := <-failed:
		return f, f.failure()
	}
	if ctx.Err() == nil {
		g.log.Info(r.c.Name()+" ready", "took", time.Since(start).Round(time.Millisecond))
	}
	return nil, nil
}

// stop cancels components last-started first and waits for each up to its
// grace period. A component that overstays is logged and left behind.
// The error of reported is Run's own and is not logged here.
func (g *Group) stop(started []*running, reported *running) {
	for i := len(started) - 1; i >= 0; i-- {
		r := started[i]
		start := time.Now()
		r.cancel()
		grace := g.grace(r.c)
		select {
		case <-r.done:
			if r.err != nil && r != reported {
				g.log.Warn("stopped with error", "component", r.c.Name(), "err", r.err)
			} else {
				g.log.Info("stopped", "component", r.c.Name(), "took", time.Since(start).Round(time.Millisecond))
			}
		case <-time.After(grace):
			g.log.Warn("did not stop within its grace period; moving on", "component", r.c.Name(), "grace", grace)
		}
	}
}

// ReadySignal is a one-shot readiness flag for components that become
// ready at one moment of their Run. Embed it to implement Readier.
type ReadySignal struct {
	once sync.Once
	ch   chan struct{}
}

// NewReadySignal returns an unset signal.
func NewReadySignal() *ReadySignal { return &ReadySignal{ch: make(chan struct{})} }

// MarkReady sets the signal; later calls do nothing.
func (r *ReadySignal) MarkReady() { r.once.Do(func() { close(r.ch) }) }

// WaitReady implements Readier: it returns once MarkReady was called, or
// the cause of ctx ending.
func (r *ReadySignal) WaitReady(ctx context.Context) error {
	select {
	case <-r.ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
