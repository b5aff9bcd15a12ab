package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/monokube/monokube/internal/cni"
)

// inNewNetns runs f on a thread of its own in a new, empty network
// namespace, which goes away with the thread.
func inNewNetns(t *testing.T, f func() error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace (make test runs as root)")
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("new network namespace: %w", err)
			return
		}
		done <- f()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// hostState is the blackhole routes and the forwarding setting of the
// calling thread's network namespace.
func hostState() (routes []string, forwarding string, err error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: cni.RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, "", err
	}
	for _, r := range rs {
		if r.Type == unix.RTN_BLACKHOLE {
			routes = append(routes, r.Dst.String())
		}
	}
	slices.Sort(routes)
	v, err := os.ReadFile(ipForward)
	return routes, strings.TrimSpace(string(v)), err
}

func expectState(what string, wantRoutes []string, wantForwarding string) error {
	routes, fwd, err := hostState()
	if err != nil {
		return err
	}
	if !slices.Equal(routes, wantRoutes) || fwd != wantForwarding {
		return fmt.Errorf("%s: blackholes %v, ip_forward %s; want %v, %s", what, routes, fwd, wantRoutes, wantForwarding)
	}
	return nil
}

func TestUndoPutsBackOnlyWhatPrepareChanged(t *testing.T) {
	cfg := Config{ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16")}
	both := []string{"10.42.0.0/16", "10.43.0.0/16"}
	log := slog.New(slog.DiscardHandler)
	t.Run("fresh host", func(t *testing.T) {
		inNewNetns(t, func() error {
			if err := expectState("before", nil, "0"); err != nil {
				return err
			}
			c, err := prepareHost(cfg, log)
			if err != nil {
				return err
			}
			if err := expectState("prepared", both, "1"); err != nil {
				return err
			}
			p := &Plan{changed: c}
			p.Undo(log)
			p.Undo(log) // a second undo has nothing left to do
			return expectState("undone", nil, "0")
		})
	})
	t.Run("host an earlier start prepared", func(t *testing.T) {
		inNewNetns(t, func() error {
			if _, err := cni.EnsureBlackholes(cfg.ClusterCIDR); err != nil {
				return err
			}
			if err := os.WriteFile(ipForward, []byte("1"), 0o644); err != nil {
				return err
			}
			c, err := prepareHost(cfg, log)
			if err != nil {
				return err
			}
			if !slices.Equal(c.routes, []netip.Prefix{cfg.ServiceCIDR}) || c.forwarding {
				return errors.New("prepare counted what it kept as changed")
			}
			(&Plan{changed: c}).Undo(log)
			return expectState("undone", both[:1], "1")
		})
	})
}
