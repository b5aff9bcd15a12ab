package cni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/lifecycle"
)

// Writer writes the conflist once the pod network is known (from the
// overlay, which waited for the node's pod CIDR); containerd picks the file
// up and the node turns Ready.
type Writer struct {
	network func() Network
	confDir string
	log     *slog.Logger
}

// NewWriter returns the CNI config task. network is called when it runs,
// after the components before it are ready.
func NewWriter(network func() Network, confDir string, log *slog.Logger) *Writer {
	return &Writer{network: network, confDir: confDir, log: log}
}

var _ lifecycle.Task = (*Writer)(nil)

// Name implements lifecycle.Task.
func (*Writer) Name() string { return "cni-config" }

// Do implements lifecycle.Task: it writes the conflist.
func (w *Writer) Do(context.Context) error { return w.write(w.network()) }

func (w *Writer) write(n Network) error {
	data, err := Render(n)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(w.confDir, 0o755); err != nil {
		return fmt.Errorf("create CNI conf dir: %w", err)
	}
	path := filepath.Join(w.confDir, ConfFile)
	if err := fsutil.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write CNI config: %w", err)
	}
	w.log.Info("pod network configured", "podCIDR", n.PodCIDR, "file", path)
	return nil
}

// RouteProtocol marks the routes a node adds (rtnetlink's protocol field;
// "ip route" shows "proto 109"), so turndown finds them without the config.
const RouteProtocol netlink.RouteProtocol = 109

// BlackholeMetric is the metric of the blackhole routes: the highest there
// is, so a route of the machine's own network for the same prefix (a LAN
// or VPN that happens to use it) always wins, and is never replaced.
const BlackholeMetric = math.MaxUint32

// EnsureBlackholes adds (or keeps) a blackhole route for each prefix, so
// packets for in-cluster addresses that no pod or service holds are
// dropped here instead of following the default route off the machine.
// Routes an earlier version added at metric 0 are moved to BlackholeMetric.
// It returns the prefixes whose route it added rather than kept, for
// RemoveBlackholes to take back after a failed start.
func EnsureBlackholes(prefixes ...netip.Prefix) (added []netip.Prefix, err error) {
	for _, p := range prefixes {
		r := blackhole(p)
		switch err := netlink.RouteAdd(r); {
		case err == nil:
			added = append(added, p)
		case !errors.Is(err, unix.EEXIST):
			return added, fmt.Errorf("add blackhole route for %s: %w", p, err)
		}
		if err := removeOldBlackholes(r.Dst); err != nil {
			return added, fmt.Errorf("blackhole route for %s: %w", p, err)
		}
	}
	return added, nil
}

// RemoveBlackholes deletes the blackhole route EnsureBlackholes keeps for
// each prefix; one already gone is not an error.
func RemoveBlackholes(prefixes ...netip.Prefix) error {
	for _, p := range prefixes {
		if err := netlink.RouteDel(blackhole(p)); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("remove blackhole route for %s: %w", p, err)
		}
	}
	return nil
}

// blackhole is the node's blackhole route for p.
func blackhole(p netip.Prefix) *netlink.Route {
	dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	return &netlink.Route{Dst: dst, Type: unix.RTN_BLACKHOLE, Protocol: RouteProtocol, Priority: BlackholeMetric}
}

// removeOldBlackholes deletes this node's blackhole routes for dst at any
// other metric than BlackholeMetric.
func removeOldBlackholes(dst *net.IPNet) error {
	filter := &netlink.Route{Dst: dst, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return err
	}
	for i := range routes {
		if routes[i].Type == unix.RTN_BLACKHOLE && routes[i].Priority != BlackholeMetric {
			if err := netlink.RouteDel(&routes[i]); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
		}
	}
	return nil
}
