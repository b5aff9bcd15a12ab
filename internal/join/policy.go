package join

import (
	"fmt"
	"net/netip"
	"strings"
)

// Policy is what no node may claim, as a name or in a serving
// certificate: the API server's names and addresses, the cluster's own
// networks, loopback and everything under the cluster domain. The approver
// checks join and serving CSRs against it; NodeHosts publishes only names
// it allows.
type Policy struct {
	ClusterDomain string         // e.g. cluster.local
	ServerNames   []string       // DNS SANs of the apiserver's serving certificate
	ServerIPs     []netip.Addr   // IP SANs of the apiserver's serving certificate
	CIDRs         []netip.Prefix // the cluster and service CIDRs
}

// CheckNodeName refuses a node name that could stand for a cluster name in
// DNS: one under the cluster domain or a reverse zone, localhost, or one of
// the API server's names.
func (p Policy) CheckNodeName(name string) error {
	if err := p.checkName(name); err != nil {
		return fmt.Errorf("node name %s: %w; give the node another name (--node-name)", name, err)
	}
	return nil
}

func (p Policy) checkName(name string) error {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	for _, zone := range []string{p.ClusterDomain, "in-addr.arpa", "ip6.arpa", "localhost", "svc"} {
		if zone != "" && (n == zone || strings.HasSuffix(n, "."+zone)) {
			return fmt.Errorf("it is under %s, which the cluster's DNS serves", zone)
		}
	}
	for _, s := range p.ServerNames {
		if strings.EqualFold(n, s) {
			return fmt.Errorf("it is a name of the API server")
		}
	}
	return nil
}

// CheckServingSAN refuses a serving-certificate name or address that
// belongs to the API server, the cluster's networks or loopback.
func (p Policy) CheckServingSAN(san string) error {
	a, err := netip.ParseAddr(san)
	if err != nil {
		return p.checkName(san)
	}
	a = a.Unmap()
	switch {
	case a.IsLoopback() || a.IsUnspecified():
		return fmt.Errorf("it is a loopback or unspecified address")
	case a.IsMulticast() || a.IsLinkLocalUnicast():
		return fmt.Errorf("it is not a unicast node address")
	}
	for _, s := range p.ServerIPs {
		if s.Unmap() == a {
			return fmt.Errorf("it is an address of the API server")
		}
	}
	for _, c := range p.CIDRs {
		if c.Contains(a) {
			return fmt.Errorf("it is inside the cluster network %s", c)
		}
	}
	return nil
}
