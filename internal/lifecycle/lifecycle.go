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

// Group runs components. The zero value is not usable; use NewGroup.
type Group struct {
	log          *slog.Logger
	components   []Component
	ReadyTimeout time.Duration // per Readier
	Grace        time.Duration // per component, when stopping
	// OnReady, if set, is called once every component is ready.
	OnReady func()
}

// NewGroup returns a group that runs components in the given order.
func NewGroup(log *slog.Logger, components ...Component) *Group {
	return &Group{log: log, components: components, ReadyTimeout: 2 * time.Minute, Grace: 5 * time.Second}
}

// running is one started component.
type running struct {
	c      Component
	cancel context.CancelFunc
	done   chan struct{}
	err    error // valid after done is closed
}

// Run starts every component and blocks until ctx ends (a clean stop: nil)
// or a component fails or is not ready in time (that error). Either way all
// started components are stopped, last-started first, before Run returns.
func (g *Group) Run(ctx context.Context) error {
	failed := make(chan *running, len(g.components))
	started := make([]*running, 0, len(g.components))
	defer func() { g.stop(started) }()

	for _, c := range g.components {
		if ctx.Err() != nil {
			return nil
		}
		r := g.start(ctx, c, failed)
		started = append(started, r)
		if err := g.waitReady(ctx, r, failed); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	g.log.Info("all components ready")
	if g.OnReady != nil {
		g.OnReady()
	}
	select {
	case <-ctx.Done():
		return nil
	case r := <-failed:
		return fmt.Errorf("%s: %w", r.c.Name(), r.err)
	}
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
// earlier component fails.
func (g *Group) waitReady(ctx context.Context, r *running, failed <-chan *running) error {
	rd, ok := r.c.(Readier)
	if !ok {
		return nil
	}
	start := time.Now()
	g.log.Info("waiting for " + r.c.Name())
	wctx, cancel := context.WithTimeoutCause(ctx, g.ReadyTimeout,
		fmt.Errorf("%s not ready after %s", r.c.Name(), g.ReadyTimeout))
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- rd.WaitReady(wctx) }()
	select {
	case err := <-result:
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("%s: %w", r.c.Name(), err)
		}
	case f := <-failed:
		return fmt.Errorf("%s: %w", f.c.Name(), f.err)
	}
	if ctx.Err() == nil {
		g.log.Info(r.c.Name()+" ready", "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// stop cancels components last-started first and waits for each up to the
// grace period. A component that overstays is logged and left behind.
func (g *Group) stop(started []*running) {
	for i := len(started) - 1; i >= 0; i-- {
		r := started[i]
		start := time.Now()
		r.cancel()
		select {
		case <-r.done:
			if r.err != nil {
				g.log.Warn("stopped with error", "component", r.c.Name(), "err", r.err)
			} else {
				g.log.Info("stopped", "component", r.c.Name(), "took", time.Since(start).Round(time.Millisecond))
			}
		case <-time.After(g.Grace):
			g.log.Warn("did not stop within its grace period; moving on", "component", r.c.Name(), "grace", g.Grace)
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
