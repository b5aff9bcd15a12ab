package server

import (
	"net/netip"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/join"
)

// ApproverPolicy is what no node may claim: every name and address of the
// apiserver's serving certificate, the cluster's networks and domain.
func ApproverPolicy(cfg *config.Server, hostname string) join.Policy {
	spec := identity.APIServerServingSpec(cfg, hostname)
	p := join.Policy{ClusterDomain: cfg.ClusterDomain, ServerNames: spec.DNSNames, CIDRs: []netip.Prefix{cfg.ClusterCIDR, cfg.ServiceCIDR}}
	for _, ip := range spec.IPs {
		if a, ok := netip.AddrFromSlice(ip); ok {
			p.ServerIPs = append(p.ServerIPs, a.Unmap())
		}
	}
	return p
}
