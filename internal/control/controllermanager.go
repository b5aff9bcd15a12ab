package control

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/monokube/monokube/internal/lifecycle"
)

// ControllerManager runs kube-controller-manager in-process.
type ControllerManager struct {
	args  []string
	probe *Prober
}

// NewControllerManager returns the controller-manager component.
func NewControllerManager(args []string, probe *Prober) *ControllerManager {
	return &ControllerManager{args: args, probe: probe}
}

var _ lifecycle.Component = (*ControllerManager)(nil)
var _ lifecycle.Readier = (*ControllerManager)(nil)

// Name implements lifecycle.Component.
func (*ControllerManager) Name() string { return "kube-controller-manager" }

// Run mirrors upstream NewControllerManagerCommand's RunE
// (cmd/kube-controller-manager/app/controllermanager.go, v1.37.2).
func (m *ControllerManager) Run(ctx context.Context) error {
	configz.Delete(app.ConfigzName) // an earlier term's (upstream's Run registers it)
	s, err := options.NewKubeControllerManagerOptions()
	if err != nil {
		return fmt.Errorf("kube-controller-manager options: %w", err)
	}
	known, disabled, aliases := app.KnownControllers(), app.ControllersDisabledByDefault(), app.ControllerAliases()
	named := s.Flags(known, disabled, aliases)
	s.ParsedFlags = &named
	fs := pflag.NewFlagSet(m.Name(), pflag.ContinueOnError)
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(m.args); err != nil {
		return fmt.Errorf("kube-controller-manager arguments: %w; check --kube-controller-manager-arg", err)
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-controller-manager feature gates: %w", err)
	}
	c, err := s.Config(ctx, known, disabled, aliases)
	if err != nil {
		return fmt.Errorf("kube-controller-manager config: %w", err)
	}
	return app.Run(ctx, c.Complete())
}

// WaitReady waits for the controller-manager's /healthz.
func (m *ControllerManager) WaitReady(ctx context.Context) error {
	return m.probe.Wait(ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", CMPort))
}
