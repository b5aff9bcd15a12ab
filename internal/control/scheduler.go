package control

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/monokube/monokube/internal/lifecycle"
)

// Scheduler runs kube-scheduler in-process.
type Scheduler struct {
	args  []string
	probe *Prober
}

// NewScheduler returns the scheduler component.
func NewScheduler(args []string, probe *Prober) *Scheduler {
	return &Scheduler{args: args, probe: probe}
}

var _ lifecycle.Component = (*Scheduler)(nil)
var _ lifecycle.Readier = (*Scheduler)(nil)

// Name implements lifecycle.Component.
func (*Scheduler) Name() string { return "kube-scheduler" }

// Run mirrors upstream runCommand (cmd/kube-scheduler/app/server.go,
// v1.37.2) without its signal handler.
func (s *Scheduler) Run(ctx context.Context) error {
	configz.Delete("componentconfig") // an earlier term's (upstream's Run registers it)
	opts := options.NewOptions()
	fs := pflag.NewFlagSet(s.Name(), pflag.ContinueOnError)
	for _, f := range opts.Flags.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(s.args); err != nil {
		return fmt.Errorf("kube-scheduler arguments: %w; check --kube-scheduler-arg", err)
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-scheduler feature gates: %w", err)
	}
	cc, sched, err := app.Setup(ctx, opts)
	if err != nil {
		return fmt.Errorf("kube-scheduler setup: %w", err)
	}
	err = app.Run(ctx, cc, sched)
	if ctx.Err() != nil {
		// Without leader election upstream Run always returns
		// "finished without leader elect" once its context ends.
		return nil
	}
	return err
}

// WaitReady waits for the scheduler's /healthz.
func (s *Scheduler) WaitReady(ctx context.Context) error {
	return s.probe.Wait(ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", SchedulerPort))
}
