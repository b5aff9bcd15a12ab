package control

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	"github.com/monokube/monokube/internal/lifecycle"
)

// APIServer runs kube-apiserver in-process.
type APIServer struct {
	args  []string
	url   string // https://127.0.0.1:<port>
	probe *Prober
	log   *slog.Logger
}

// NewAPIServer returns the apiserver component for the given command line,
// probed on the loopback port.
func NewAPIServer(args []string, port int, probe *Prober, log *slog.Logger) *APIServer {
	return &APIServer{args: args, url: fmt.Sprintf("https://127.0.0.1:%d", port), probe: probe, log: log}
}

var _ lifecycle.Component = (*APIServer)(nil)
var _ lifecycle.Readier = (*APIServer)(nil)

// Name implements lifecycle.Component.
func (*APIServer) Name() string { return "kube-apiserver" }

// Run mirrors upstream NewAPIServerCommand's RunE
// (cmd/kube-apiserver/app/server.go, v1.37.2) minus the signal handler and
// logging setup, which monokube owns.
func (a *APIServer) Run(ctx context.Context) error {
	setEncryptionReload()
	s := options.NewServerRunOptions()
	fs := pflag.NewFlagSet(a.Name(), pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(a.args); err != nil {
		return fmt.Errorf("kube-apiserver arguments: %w; check --kube-apiserver-arg", err)
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-apiserver feature gates: %w", err)
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("complete kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}
	return app.Run(ctx, completed)
}

// WaitReady waits until the apiserver serves, bootstrap RBAC is in place
// and /readyz passes, logging how long each step took.
func (a *APIServer) WaitReady(ctx context.Context) error {
	steps := []struct{ what, path string }{
		{"kube-apiserver serving", "/livez"},
		{"bootstrap RBAC", "/readyz/poststarthook/rbac/bootstrap-roles"},
		{"kube-apiserver /readyz", "/readyz"},
	}
	for _, s := range steps {
		start := time.Now()
		a.log.Info("waiting for " + s.what)
		if err := a.probe.Wait(ctx, a.url+s.path); err != nil {
			return fmt.Errorf("waiting for %s: %w", s.what, err)
		}
		a.log.Info(s.what+" ready", "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
