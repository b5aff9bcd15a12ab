// Package kubeproxy runs the upstream kube-proxy in-process with a
// KubeProxyConfiguration rendered from plain data.
package kubeproxy

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/lifecycle"
)

// Ports on loopback.
const (
	HealthzPort = 10256
	MetricsPort = 10249
)

// Config is what monokube decides about kube-proxy.
type Config struct {
	NodeName    string
	Kubeconfig  string
	ClusterCIDR netip.Prefix
	// HostConntrack is false when monokube cannot tell it owns the
	// host's network namespace: kube-proxy then leaves the host-wide
	// conntrack table size and timeouts alone.
	HostConntrack bool
	// NoOOMScoreAdj leaves oom_score_adj alone where it cannot be lowered
	// (CAP_SYS_RESOURCE missing).
	NoOOMScoreAdj bool
	Debug         bool
	Args          []config.Arg // --kube-proxy-arg, applied over the file
}

// Render returns the KubeProxyConfiguration YAML for c.
func Render(c Config) ([]byte, error) {
	kc := v1alpha1.KubeProxyConfiguration{
		TypeMeta:           metav1.TypeMeta{APIVersion: "kubeproxy.config.k8s.io/v1alpha1", Kind: "KubeProxyConfiguration"},
		HostnameOverride:   c.NodeName,
		ClusterCIDR:        c.ClusterCIDR.String(),
		Mode:               "iptables",
		HealthzBindAddress: fmt.Sprintf("127.0.0.1:%d", HealthzPort),
		MetricsBindAddress: fmt.Sprintf("127.0.0.1:%d", MetricsPort),
	}
	kc.ClientConnection.Kubeconfig = c.Kubeconfig
	if !c.HostConntrack {
		kc.Conntrack.MaxPerCore = ptr.To[int32](0)
		kc.Conntrack.Min = ptr.To[int32](0)
		kc.Conntrack.TCPEstablishedTimeout = &metav1.Duration{}
		kc.Conntrack.TCPCloseWaitTimeout = &metav1.Duration{}
	}
	if c.NoOOMScoreAdj {
		kc.OOMScoreAdj = ptr.To[int32](0)
	}
	if c.Debug {
		kc.Logging.Verbosity = 2
	}
	out, err := yaml.Marshal(kc)
	if err != nil {
		return nil, fmt.Errorf("render kube-proxy config: %w", err)
	}
	return out, nil
}

// Args are kube-proxy's flags: the config file, then --kube-proxy-arg.
func Args(c Config, configFile string) []string {
	args := []string{"--config=" + configFile}
	for _, a := range c.Args {
		args = append(args, a.Flag())
	}
	return args
}

// Proxy runs kube-proxy in-process.
type Proxy struct {
	args []string
}

// New returns the kube-proxy component; args come from Args.
func New(args []string) *Proxy { return &Proxy{args: args} }

var _ lifecycle.Component = (*Proxy)(nil)

// Name implements lifecycle.Component.
func (*Proxy) Name() string { return "kube-proxy" }

// Run mirrors upstream NewProxyCommand's RunE (cmd/kube-proxy/app,
// v1.37.2) with monokube's context instead of context.Background and
// without re-initialising logging.
//
// It returns when ctx ends, but upstream's proxier does not stop with it:
// of what ProxyServer.Run starts, the healthz and metrics servers and the
// Service and EndpointSlice handlers stop on ctx; the informers, the node
// and ServiceCIDR handlers and Proxier.SyncLoop run on wait.NeverStop
// (cmd/kube-proxy/app/server.go:620-641, pkg/proxy/iptables/proxier.go:430
// at v1.37.2), and newProxyServer is unexported, so nothing outside can
// build a proxier it could stop. They stay until the process exits, which
// a node's stop does next; a restart of kube-proxy alone therefore has to
// be a restart of the process (lifecycle.RestartError).
func (p *Proxy) Run(ctx context.Context) error {
	opts := app.NewOptions()
	fs := pflag.NewFlagSet(p.Name(), pflag.ContinueOnError)
	opts.AddFlags(fs)
	if err := fs.Parse(p.args); err != nil {
		return fmt.Errorf("kube-proxy arguments: %w; check --kube-proxy-arg", err)
	}
	if err := opts.Complete(fs); err != nil {
		return fmt.Errorf("kube-proxy config: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("kube-proxy config: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- opts.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// Its iptables rules stay in place, which is what a restart wants.
		return nil
	}
}
