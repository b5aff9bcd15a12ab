package flannel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	rbacv1 "k8s.io/api/rbac/v1"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/nodewatch"
)

// Peer gives a server with no node of its own (--disable-agent) routes to
// every node's pod subnet through the nodes' VXLAN endpoints, so the
// apiserver reaches webhooks, aggregated APIs and pod proxies on pod IPs.
// It sends encapsulated packets from the server's own address and holds no
// lease: replies come back over the plain network.
type Peer struct {
	nodeIP netip.Addr
	iface  string // --flannel-iface; empty: the interface holding nodeIP
	client kubernetes.Interface
	log    *slog.Logger
}

// NewPeer returns the component.
func NewPeer(nodeIP netip.Addr, iface string, client kubernetes.Interface, log *slog.Logger) *Peer {
	return &Peer{nodeIP: nodeIP, iface: iface, client: client, log: log}
}

// Name implements lifecycle.Component.
func (*Peer) Name() string { return "flannel routes" }

// Run keeps one route per node subnet until ctx ends.
func (p *Peer) Run(ctx context.Context) error {
	link, err := p.device()
	if err != nil {
		return err
	}
	installed := map[netip.Prefix]bool{}
	return nodewatch.Run(ctx, p.client, func(nodes []*corev1.Node) {
		installed = p.reconcile(link, nodes, installed)
	})
}

// device creates (or adopts) flannel.1 on the server: VNI 1 on the
// kernel's VXLAN port, as flannel's nodes use.
func (p *Peer) device() (netlink.Link, error) {
	ext, err := externalInterface(p.iface, p.nodeIP)
	if err != nil {
		return nil, err
	}
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: "flannel.1", MTU: ext.Iface.MTU - 50},
		VxlanId:   1, VtepDevIndex: ext.Iface.Index, SrcAddr: net.IP(p.nodeIP.AsSlice()),
	}
	if err := netlink.LinkAdd(vx); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("flannel: create flannel.1: %w", err)
	}
	link, err := netlink.LinkByName("flannel.1")
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("flannel: bring up flannel.1: %w", err)
	}
	return link, nil
}

// reconcile installs a route, ARP and FDB entry for each node's subnet and
// removes routes of subnets no node has any more.
func (p *Peer) reconcile(link netlink.Link, nodes []*corev1.Node, installed map[netip.Prefix]bool) map[netip.Prefix]bool {
	next := map[netip.Prefix]bool{}
	for _, n := range nodes {
		ep, ok := endpoint(n)
		if !ok || ep.publicIP == p.nodeIP {
			continue
		}
		if err := p.install(link, ep); err != nil {
			p.log.Warn("cannot route to a node's pods", "node", n.Name, "err", err)
			continue
		}
		next[ep.subnet] = true
	}
	for sn := range installed {
		if !next[sn] {
			_ = netlink.RouteDel(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: prefixNet(sn)})
		}
	}
	return next
}

// nodeEndpoint is what flannel publishes about a node.
type nodeEndpoint struct {
	subnet   netip.Prefix
	publicIP netip.Addr
	vtepMAC  net.HardwareAddr
}

func endpoint(n *corev1.Node) (nodeEndpoint, bool) {
	sn, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil {
		return nodeEndpoint{}, false
	}
	pub, err := netip.ParseAddr(n.Annotations[annotationPrefix+"/public-ip"])
	if err != nil {
		return nodeEndpoint{}, false
	}
	var data struct{ VtepMAC string }
	if json.Unmarshal([]byte(n.Annotations[annotationPrefix+"/backend-data"]), &data) != nil {
		return nodeEndpoint{}, false
	}
	mac, err := net.ParseMAC(data.VtepMAC)
	if err != nil {
		return nodeEndpoint{}, false
	}
	return nodeEndpoint{subnet: sn.Masked(), publicIP: pub, vtepMAC: mac}, true
}

func (p *Peer) install(link netlink.Link, ep nodeEndpoint) error {
	gw := net.IP(ep.subnet.Addr().AsSlice())
	idx := link.Attrs().Index
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, State: netlink.NUD_PERMANENT, Type: syscall.RTN_UNICAST,
		IP: gw, HardwareAddr: ep.vtepMAC}); err != nil {
		return fmt.Errorf("ARP entry: %w", err)
	}
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, State: netlink.NUD_PERMANENT, Family: syscall.AF_BRIDGE,
		Flags: netlink.NTF_SELF, IP: net.IP(ep.publicIP.AsSlice()), HardwareAddr: ep.vtepMAC}); err != nil {
		return fmt.Errorf("FDB entry: %w", err)
	}
	r := &netlink.Route{LinkIndex: idx, Scope: netlink.SCOPE_UNIVERSE, Dst: prefixNet(ep.subnet), Gw: gw,
		Src: net.IP(p.nodeIP.AsSlice())}
	r.SetFlag(syscall.RTNH_F_ONLINK)
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("route: %w", err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// PeerRules are what the Peer may do: watch nodes.
func PeerRules() (cluster, system []rbacv1.PolicyRule) {
	return []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch"}}}, nil
}
