package kubelet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/server/flagz"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	zpagesfeatures "k8s.io/component-base/zpages/features"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kubelet/app"

	"github.com/monokube/monokube/internal/lifecycle"
)

// Kubelet runs the upstream kubelet command in-process.
type Kubelet struct {
	args            []string
	runtimeEndpoint string
}

// New returns the kubelet component; args come from Args.
func New(args []string, runtimeEndpoint string) *Kubelet {
	return &Kubelet{args: args, runtimeEndpoint: runtimeEndpoint}
}

var _ lifecycle.Component = (*Kubelet)(nil)
var _ lifecycle.Readier = (*Kubelet)(nil)

// Name implements lifecycle.Component.
func (*Kubelet) Name() string { return "kubelet" }

// errStoppedAlone is the kubelet returning while monokube still wants it.
var errStoppedAlone = errors.New("the kubelet stopped on its own; its log above says why")

// Run runs the kubelet until ctx ends. It is upstream NewKubeletCommand's
// RunE (cmd/kubelet/app/server.go, v1.37.2) with two differences: the
// kubelet runs on ctx, so it stops when the group stops it, in the
// group's order, instead of on a SIGTERM handler of its own (which would
// also exit the process at once on a second signal); and the effective
// configuration is not dumped to the log (the rendered file holds it).
func (k *Kubelet) Run(ctx context.Context) error {
	// cAdvisor finds containerd (for pod network stats) through a flag on
	// the process-wide Go flag set; it has no other way to be told.
	if err := flag.Set("containerd", k.runtimeEndpoint); err != nil {
		return fmt.Errorf("point cAdvisor at containerd: %w", err)
	}
	s, flags, skipped, err := load(ctx, k.args)
	if err != nil {
		return err
	}
	logs.InitLogs()
	if err := logsapi.ValidateAndApplyAsField(&s.Logging, utilfeature.DefaultFeatureGate, field.NewPath("logging")); err != nil {
		return fmt.Errorf("kubelet logging: %w", err)
	}
	logger := klog.FromContext(ctx)
	for _, f := range skipped {
		logger.V(4).Info("Skipped file in drop-in directory (does not have .conf extension)", "file", f)
	}
	cliflag.PrintFlags(flags)
	deps, err := app.UnsecuredDependencies(ctx, s, utilfeature.DefaultFeatureGate)
	if err != nil {
		return fmt.Errorf("kubelet dependencies: %w", err)
	}
	if utilfeature.DefaultFeatureGate.Enabled(zpagesfeatures.ComponentFlagz) {
		deps.Flagz = flagz.NamedFlagSetsReader{FlagSets: cliflag.NamedFlagSets{
			FlagSets: map[string]*pflag.FlagSet{k.Name(): flags},
		}}
	}
	utilfeature.DefaultMutableFeatureGate.AddMetrics()
	if err := app.Run(ctx, s, deps, utilfeature.DefaultFeatureGate); err != nil {
		return err
	}
	if ctx.Err() == nil {
		return errStoppedAlone
	}
	return nil
}

// WaitReady waits for the kubelet's loopback /healthz.
func (k *Kubelet) WaitReady(ctx context.Context) error {
	url := "http://127.0.0.1:" + strconv.Itoa(HealthzPort) + "/healthz"
	c := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
