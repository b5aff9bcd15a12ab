package agent

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/identity"
)

func TestNodeConfigChecksLearnedSettings(t *testing.T) {
	settings := identity.ClusterSettings{
		ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16"),
		ClusterDNS: netip.MustParseAddr("10.43.0.10"), ClusterDomain: "cluster.local",
	}
	for _, tc := range []struct {
		name, nodeName, nodeIP, want string
	}{
		{"fine", "worker-1", "192.168.1.5", ""},
		{"node IP in the cluster CIDR", "worker-1", "10.42.9.9", "inside the cluster-cidr 10.42.0.0/16"},
		{"node IP in the service CIDR", "worker-1", "10.43.1.1", "inside the service-cidr 10.43.0.0/16"},
		{"name under the cluster domain", "kubernetes.default.svc.cluster.local", "192.168.1.5", "under the cluster domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Agent{NodeName: tc.nodeName, NodeIP: netip.MustParseAddr(tc.nodeIP)}
			_, err := nodeConfig(cfg, settings)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("nodeConfig = %v, want %q", err, tc.want)
			}
		})
	}
}
