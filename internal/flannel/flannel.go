// Package flannel runs flannel in-process on a node: the kube subnet
// manager over the node's podCIDR (allocated by the controller-manager) and
// the VXLAN backend, which routes every other node's pod subnet through
// flannel.1. Pods stay on the plain bridge + host-local network
// (internal/cni); flannel only connects the nodes' subnets and
// masquerades traffic leaving the cluster network.
package flannel

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/flannel-io/flannel/pkg/backend"
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan" // registers the vxlan backend
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/ipmatch"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/cni"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/lifecycle"
)

// annotationPrefix is flannel's usual one, so its node annotations read as
// users know them.
const annotationPrefix = "flannel.alpha.coreos.com"

// Config is one node's flannel.
type Config struct {
	NodeName    string
	Iface       string // --flannel-iface; empty: the interface holding NodeIP
	NodeIP      netip.Addr
	ClusterCIDR netip.Prefix
	Kubeconfig  string // the node's own credentials
	NetConf     string // where to write flannel's network config
	SubnetFile  string // subnet.env, for tools that read it
}

// Flannel is the overlay component. It is ready once the node's VXLAN
// device is up; Network then describes the pods' network.
type Flannel struct {
	cfg       Config
	newClient func() (kubernetes.Interface, error)
	log       *slog.Logger
	network   cni.Network // set before MarkReady, read only after
	*lifecycle.ReadySignal
}

// New returns the component.
func New(cfg Config, newClient func() (kubernetes.Interface, error), log *slog.Logger) *Flannel {
	return &Flannel{cfg: cfg, newClient: newClient, log: log, ReadySignal: lifecycle.NewReadySignal()}
}

var _ lifecycle.Component = (*Flannel)(nil)

// Name implements lifecycle.Component.
func (*Flannel) Name() string { return "flannel" }

// Network is this node's pod network once the component is ready: its pod
// CIDR, the MTU inside the overlay (the interface's, less the VXLAN
// header), and no bridge masquerading, which flannel's rules do instead.
func (f *Flannel) Network() cni.Network { return f.network }

// Run waits for the node's podCIDR, brings up the VXLAN network and keeps
// routes to the other nodes in step until ctx ends.
func (f *Flannel) Run(ctx context.Context) error {
	client, err := f.newClient()
	if err != nil {
		return err
	}
	podCIDR, err := waitPodCIDR(ctx, client, f.cfg.NodeName)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	network, err := f.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	f.network = cni.Network{PodCIDR: podCIDR, MTU: network.MTU(), NoMasq: true}
	f.log.Info("overlay up", "subnet", network.Lease().Subnet.String(), "mtu", network.MTU(), "backend", "vxlan")
	f.MarkReady()
	network.Run(ctx)
	return nil
}

// start registers this node's lease and installs flannel's iptables rules.
func (f *Flannel) start(ctx context.Context) (backend.Network, error) {
	netConf, err := json.Marshal(map[string]any{
		"Network": f.cfg.ClusterCIDR.String(), "EnableIPv4": true,
		"Backend": map[string]any{"Type": "vxlan"},
	})
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFile(f.cfg.NetConf, netConf, 0o644); err != nil {
		return nil, err
	}
	// flannel's kube subnet manager reads the node name from here only.
	if err := os.Setenv("NODE_NAME", f.cfg.NodeName); err != nil {
		return nil, err
	}
	ext, err := externalInterface(f.cfg.Iface, f.cfg.NodeIP)
	if err != nil {
		return nil, err
	}
	sm, err := kube.NewSubnetManager(ctx, "", f.cfg.Kubeconfig, annotationPrefix, f.cfg.NetConf, false)
	if err != nil {
		return nil, fmt.Errorf("flannel subnet manager: %w", err)
	}
	conf, err := sm.GetNetworkConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("flannel network config: %w", err)
	}
	be, err := backend.NewManager(ctx, sm, ext).GetBackend(conf.BackendType)
	if err != nil {
		return nil, fmt.Errorf("flannel backend: %w", err)
	}
	var wg sync.WaitGroup
	network, err := be.RegisterNetwork(ctx, &wg, conf)
	if err != nil {
		return nil, fmt.Errorf("flannel: register this node's subnet: %w", err)
	}
	tm := &iptables.IPTablesManager{}
	if err := tm.Init(ctx); err != nil {
		return nil, fmt.Errorf("flannel iptables: %w", err)
	}
	if err := tm.SetupAndEnsureMasqRules(ctx, conf.Network, ip.IP4Net{}, ip.IP4Net{}, ip.IP6Net{}, ip.IP6Net{}, ip.IP6Net{},
		network.Lease(), 60, false); err != nil {
		return nil, fmt.Errorf("flannel masquerade rules: %w", err)
	}
	tm.SetupAndEnsureForwardRules(ctx, conf.Network, ip.IP6Net{}, 60)
	if err := sm.HandleSubnetFile(f.cfg.SubnetFile, conf, true, network.Lease().Subnet, network.Lease().IPv6Subnet, network.MTU()); err != nil {
		return nil, fmt.Errorf("write %s: %w", f.cfg.SubnetFile, err)
	}
	return network, nil
}

// waitPodCIDR polls node nodeName until the controller-manager has
// allocated its pod range, and returns it.
func waitPodCIDR(ctx context.Context, client kubernetes.Interface, nodeName string) (netip.Prefix, error) {
	for {
		node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil && node.Spec.PodCIDR != "" {
			p, err := netip.ParsePrefix(node.Spec.PodCIDR)
			if err != nil {
				return p, fmt.Errorf("node %s has pod CIDR %q: %w", nodeName, node.Spec.PodCIDR, err)
			}
			return p, nil
		}
		select {
		case <-ctx.Done():
			return netip.Prefix{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// externalInterface is the interface VXLAN runs over: iface
// (--flannel-iface) or else the one holding nodeIP.
func externalInterface(iface string, nodeIP netip.Addr) (*backend.ExternalInterface, error) {
	if iface == "" {
		iface = nodeIP.String()
	}
	ext, err := ipmatch.LookupExtIface(iface, "", "", ipv4Stack(), ipmatch.PublicIPOpts{})
	if err != nil {
		return nil, fmt.Errorf("flannel: find the interface %s (give --flannel-iface): %w", iface, err)
	}
	return ext, nil
}

func ipv4Stack() int {
	stack, _ := ipmatch.GetIPFamily(true, false) // never fails for IPv4 only
	return stack
}
