// Package cni gives a node its pod network: the CNI conflist for the
// node's pod CIDR (bridge + host-local, portmap, bandwidth), written once
// the controller-manager has allocated that CIDR, and blackhole routes that
// keep traffic for unassigned cluster and service addresses on the machine.
package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// Bridge is the Linux bridge pods attach to.
const Bridge = "cni0"

// ConfFile is the conflist's name in the CNI conf dir.
const ConfFile = "10-monokube.conflist"

// Network is what the conflist says.
type Network struct {
	PodCIDR netip.Prefix // this node's range
	MTU     int          // 0: the plugin's default
	NoMasq  bool         // the overlay (flannel) masquerades instead of the bridge
}

// Render returns the conflist JSON.
func Render(n Network) ([]byte, error) {
	bridge := map[string]any{
		"type":         "bridge",
		"bridge":       Bridge,
		"isGateway":    true,
		"ipMasq":       !n.NoMasq,
		"hairpinMode":  true,
		"forceAddress": true,
		"ipam": map[string]any{
			"type":   "host-local",
			"ranges": [][]map[string]string{{{"subnet": n.PodCIDR.String()}}},
			"routes": []map[string]string{{"dst": defaultRoute(n.PodCIDR)}},
		},
	}
	if n.MTU > 0 {
		bridge["mtu"] = n.MTU
	}
	list := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "monokube",
		"plugins": []any{
			bridge,
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}},
		},
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render CNI config: %w", err)
	}
	return append(out, '\n'), nil
}

func defaultRoute(p netip.Prefix) string {
	if p.Addr().Is6() {
		return "::/0"
	}
	return "0.0.0.0/0"
}
