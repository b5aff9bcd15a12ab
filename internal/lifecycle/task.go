package lifecycle

import "context"

// Task is one-shot work in a node's start order: importing images, writing
// a config once a value is known, draining before an upgrade. Do returns
// nil once the work is done, or the error that fails the start. A task
// holds nothing after Do returns, so it has no stop of its own.
type Task interface {
	Name() string
	Do(ctx context.Context) error
}

// Await places t in the group so that the next component starts only once
// t is done, as a Readier gates it.
func Await(t Task) Component { return &awaited{task: newTask(t)} }

// Background places t in the group without gating anything: the next
// component starts at once, and t's success is not waited for.
func Background(t Task) Component { return newTask(t) }

// task runs a Task as a Component: Do, then nothing until the group stops
// it (its Run must not return early, or the group would take that for a
// failure).
type task struct {
	Task
	done *ReadySignal
}

func newTask(t Task) *task { return &task{Task: t, done: NewReadySignal()} }

var _ Component = (*task)(nil)

// Run implements Component.
func (t *task) Run(ctx context.Context) error {
	if err := t.Do(ctx); err != nil {
		return err
	}
	t.done.MarkReady()
	<-ctx.Done()
	return nil
}

// awaited is a task the group waits for.
type awaited struct{ *task }

var _ Readier = (*awaited)(nil)

// WaitReady implements Readier: Do returned nil.
func (a *awaited) WaitReady(ctx context.Context) error { return a.done.WaitReady(ctx) }
