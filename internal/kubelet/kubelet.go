package kubelet

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"time"

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

// Run runs the kubelet until ctx ends.
func (k *Kubelet) Run(ctx context.Context) error {
	// cAdvisor finds containerd (for pod network stats) through a flag on
	// the process-wide Go flag set; it has no other way to be told.
	if err := flag.Set("containerd", k.runtimeEndpoint); err != nil {
		return fmt.Errorf("point cAdvisor at containerd: %w", err)
	}
	cmd := app.NewKubeletCommand(ctx)
	cmd.SetArgs(k.args)
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		return err
	}
	// Upstream stops the kubelet on SIGTERM/SIGINT itself (its own signal
	// context). That is part of monokube's orderly stop, not a failure:
	// wait for the group to stop this component.
	<-ctx.Done()
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
