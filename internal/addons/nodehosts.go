package addons

import (
	"context"
	rbacv1 "k8s.io/api/rbac/v1"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/nodewatch"
)

// NodeHostsManager owns the NodeHosts key of the coredns ConfigMap; the
// manifest's own fields belong to the deploy controller's manager.
const NodeHostsManager = "monokube-nodehosts"

// NodeHosts keeps the NodeHosts key of the coredns ConfigMap in
// kube-system listing every node's InternalIP and name, so CoreDNS's hosts
// plugin resolves node names.
type NodeHosts struct {
	client kubernetes.Interface
	log    *slog.Logger
}

// NewNodeHosts returns the NodeHosts component.
func NewNodeHosts(client kubernetes.Interface, log *slog.Logger) *NodeHosts {
	return &NodeHosts{client: client, log: log}
}

var _ lifecycle.Component = (*NodeHosts)(nil)

// Name implements lifecycle.Component.
func (*NodeHosts) Name() string { return "coredns-node-hosts" }

// Run watches nodes and applies NodeHosts whenever the listing changes.
func (n *NodeHosts) Run(ctx context.Context) error {
	last := ""
	return nodewatch.Run(ctx, n.client, func(nodes []*corev1.Node) {
		hosts := HostsFile(nodes)
		if hosts == last {
			return
		}
		if err := n.apply(ctx, hosts); err != nil {
			n.log.Warn("cannot update node names for CoreDNS; retrying at the next node change", "err", err)
			return
		}
		last = hosts
	})
}

func (n *NodeHosts) apply(ctx context.Context, hosts string) error {
	cm := corev1ac.ConfigMap("coredns", metav1.NamespaceSystem).WithData(map[string]string{"NodeHosts": hosts})
	_, err := n.client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Apply(ctx, cm,
		metav1.ApplyOptions{FieldManager: NodeHostsManager, Force: true})
	return err
}

// HostsFile renders nodes as hosts-file lines "IP NAME", sorted by name.
//
// CoreDNS's hosts plugin answers before its kubernetes plugin, so a line
// here wins over any cluster or external name. Only nodes whose name is a
// single DNS label (not localhost) are listed: a pod resolves a short name
// through its search path, cluster names first, so such a name can never
// shadow a Service or a real domain. A dotted node name (an FQDN) is left to
// the upstream DNS that made it. Addresses are listed only if they parse as
// IPs. Nodes with no InternalIP yet are left out.
func HostsFile(nodes []*corev1.Node) string {
	var lines []string
	for _, node := range nodes {
		if strings.Contains(node.Name, ".") || strings.EqualFold(node.Name, "localhost") || len(validation.IsDNS1123Label(node.Name)) > 0 {
			continue
		}
		for _, a := range node.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP {
				lines = append(lines, ip.String()+" "+node.Name)
			}
		}
	}
	slices.SortFunc(lines, func(a, b string) int {
		return strings.Compare(a[strings.IndexByte(a, ' '):], b[strings.IndexByte(b, ' '):])
	})
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// NodeHostsRules are what NodeHosts may do: watch nodes, and apply the
// coredns ConfigMap (create, for a ConfigMap the addon has not made yet,
// cannot be narrowed to one name).
func NodeHostsRules() (cluster, system []rbacv1.PolicyRule) {
	return []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch"}},
		}, []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "patch"}, ResourceNames: []string{"coredns"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		}
}
