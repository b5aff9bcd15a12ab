package flannel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/lifecycle"
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

var _ lifecycle.Component = (*Peer)(nil)

// Name implements lifecycle.Component.
func (*Peer) Name() string { return "flannel-routes" }

// Run keeps one route per node subnet until ctx ends.
func (p *Peer) Run(ctx context.Context) error {
	link, err := p.device()
	if err != nil {
		return err
	}
	installed := map[netip.Prefix]nodeEndpoint{}
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
// removes the entries of subnets no node has any more, or whose node now
// publishes another endpoint.
func (p *Peer) reconcile(link netlink.Link, nodes []*corev1.Node, installed map[netip.Prefix]nodeEndpoint) map[netip.Prefix]nodeEndpoint {
	want, refused := endpoints(nodes, p.nodeIP)
	for _, r := range refused {
		p.log.Warn("not routing to nodes that claim the same VXLAN endpoint", "nodes", r.nodes, "claim", r.claim)
	}
	for sn, old := range installed {
		if ep, ok := want[sn]; !ok || !ep.equal(old) {
			p.remove(link, old)
		}
	}
	next := map[netip.Prefix]nodeEndpoint{}
	for sn, ep := range want {
		if err := p.install(link, ep); err != nil {
			p.log.Warn("cannot route to a node's pods", "node", ep.node, "err", err)
			continue
		}
		next[sn] = ep
	}
	return next
}

// refusal names nodes left out because they claim one endpoint.
type refusal struct {
	nodes []string
	claim string
}

// endpoints picks the endpoints to route to: each node's, but for this
// server's own address and for every node whose VTEP MAC or public IP
// another node also publishes. The kernel's forwarding entries are keyed
// by MAC, so a node that copied another's MAC would take that node's
// traffic; which of the two is honest cannot be told from the API, so
// neither gets a route and both are named in the log.
func endpoints(nodes []*corev1.Node, self netip.Addr) (map[netip.Prefix]nodeEndpoint, []refusal) {
	var eps []nodeEndpoint
	claims := map[string][]string{} // "mac X" or "ip Y" -> node names
	for _, n := range nodes {
		ep, ok := endpoint(n)
		if !ok || ep.publicIP == self {
			continue
		}
		eps = append(eps, ep)
		for _, c := range ep.claims() {
			claims[c] = append(claims[c], n.Name)
		}
	}
	out := map[netip.Prefix]nodeEndpoint{}
	for _, ep := range eps {
		if !slices.ContainsFunc(ep.claims(), func(c string) bool { return len(claims[c]) > 1 }) {
			out[ep.subnet] = ep
		}
	}
	var refused []refusal
	for _, c := range slices.Sorted(maps.Keys(claims)) {
		if len(claims[c]) > 1 {
			refused = append(refused, refusal{nodes: claims[c], claim: c})
		}
	}
	return out, refused
}

// nodeEndpoint is what flannel publishes about a node.
type nodeEndpoint struct {
	node     string
	subnet   netip.Prefix
	publicIP netip.Addr
	vtepMAC  net.HardwareAddr
}

// claims are the keys no two nodes may share.
func (e nodeEndpoint) claims() []string {
	return []string{"mac " + e.vtepMAC.String(), "ip " + e.publicIP.String()}
}

func (e nodeEndpoint) equal(o nodeEndpoint) bool {
	return e.subnet == o.subnet && e.publicIP == o.publicIP && bytes.Equal(e.vtepMAC, o.vtepMAC)
}

func endpoint(n *corev1.Node) (nodeEndpoint, bool) {
	sn, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil {
		return nodeEndpoint{}, false
	}
	// The annotation, not the node's InternalIP: with --flannel-iface the
	// VXLAN endpoint is another interface's address.
	pub, err := netip.ParseAddr(n.Annotations[annotationPrefix+"/public-ip"])
	if err != nil || pub.IsLoopback() || pub.IsUnspecified() || pub.IsMulticast() {
		return nodeEndpoint{}, false
	}
	var data struct{ VtepMAC string }
	if json.Unmarshal([]byte(n.Annotations[annotationPrefix+"/backend-data"]), &data) != nil {
		return nodeEndpoint{}, false
	}
	mac, err := net.ParseMAC(data.VtepMAC)
	if err != nil || len(mac) != 6 || mac[0]&1 == 1 { // a unicast Ethernet address
		return nodeEndpoint{}, false
	}
	return nodeEndpoint{node: n.Name, subnet: sn.Masked(), publicIP: pub, vtepMAC: mac}, true
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

// remove deletes what install made for ep: its route, ARP and FDB entry.
func (p *Peer) remove(link netlink.Link, ep nodeEndpoint) {
	idx := link.Attrs().Index
	gw := net.IP(ep.subnet.Addr().AsSlice())
	_ = netlink.RouteDel(&netlink.Route{LinkIndex: idx, Dst: prefixNet(ep.subnet)})
	_ = netlink.NeighDel(&netlink.Neigh{LinkIndex: idx, IP: gw, HardwareAddr: ep.vtepMAC})
	_ = netlink.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: syscall.AF_BRIDGE, Flags: netlink.NTF_SELF,
		IP: net.IP(ep.publicIP.AsSlice()), HardwareAddr: ep.vtepMAC})
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// PeerRules are what the Peer may do: watch nodes.
func PeerRules() (cluster, system []rbacv1.PolicyRule) {
	return []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch"}}}, nil
}
