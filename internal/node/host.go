package node

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/monokube/monokube/internal/cni"
)

// ipForward is IPv4 forwarding in the network namespace of the thread
// that opens it.
const ipForward = "/proc/sys/net/ipv4/ip_forward"

// hostChanges are what a node's preparation changed outside its data dir.
type hostChanges struct {
	routes     []netip.Prefix // blackhole routes added, not kept
	forwarding bool           // IPv4 forwarding turned on
}

// prepareHost sets what a node needs of the host's network: blackhole
// routes for the cluster's address ranges and IPv4 forwarding. It returns
// what it changed; on an error it has put back what it changed.
func prepareHost(cfg Config, log *slog.Logger) (hostChanges, error) {
	var c hostChanges
	var err error
	if c.routes, err = cni.EnsureBlackholes(cfg.ClusterCIDR, cfg.ServiceCIDR); err != nil {
		c.undo(log)
		return hostChanges{}, err
	}
	if c.forwarding, err = enableForwarding(log); err != nil {
		c.undo(log)
		return hostChanges{}, err
	}
	return c, nil
}

// undo puts back what c records, logging what it did and what it could
// not: a failed start has its own error to return.
func (c hostChanges) undo(log *slog.Logger) {
	if len(c.routes) > 0 {
		if err := cni.RemoveBlackholes(c.routes...); err != nil {
			log.Warn("could not remove the blackhole routes this start added", "err", err)
		} else {
			log.Info("removed the blackhole routes this start added", "prefixes", c.routes)
		}
	}
	if c.forwarding {
		if err := os.WriteFile(ipForward, []byte("0"), 0o644); err != nil {
			log.Warn("could not turn IPv4 forwarding back off", "err", err)
		} else {
			log.Info("turned IPv4 forwarding back off (net.ipv4.ip_forward=0), as it was before this start")
		}
	}
}

// Undo puts back what Prepare changed on the host, for a start that fails
// before its node runs: the blackhole routes it added (not those an
// earlier start left, which a running node's pods rely on) and IPv4
// forwarding if it turned it on. The rendered configs stay: every start
// rewrites them, and they show what the failed start used. So do the
// extracted helpers, a cache keyed by their hash.
func (p *Plan) Undo(log *slog.Logger) {
	p.changed.undo(log)
	p.changed = hostChanges{}
}

// enableForwarding turns on IPv4 forwarding in this network namespace:
// pod traffic to other nodes, Services and NodePorts is routed through the
// node. It reports whether it changed the setting.
func enableForwarding(log *slog.Logger) (bool, error) {
	if v, err := os.ReadFile(ipForward); err == nil && strings.TrimSpace(string(v)) == "1" {
		return false, nil
	}
	if err := os.WriteFile(ipForward, []byte("1"), 0o644); err != nil {
		return false, fmt.Errorf("turn on IPv4 forwarding (%s): %w", ipForward, err)
	}
	log.Info("turned on IPv4 forwarding (net.ipv4.ip_forward=1)")
	return true, nil
}
