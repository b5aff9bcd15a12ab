package addons

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

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

// Name implements lifecycle.Component.
func (*NodeHosts) Name() string { return "coredns node hosts" }

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
// Nodes with no InternalIP yet are left out.
func HostsFile(nodes []*corev1.Node) string {
	var lines []string
	for _, node := range nodes {
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				lines = append(lines, a.Address+" "+node.Name)
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
