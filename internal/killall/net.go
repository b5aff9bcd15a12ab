package killall

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/monokube/monokube/internal/cni"
)

// unmountUnder unmounts everything mounted below dirs (container root
// filesystems, pod volumes, network namespace files), deepest first. A dir
// that is itself a mount point (a disk for the data) stays mounted.
func unmountUnder(dirs ...string) error {
	var mounts []*mountinfo.Info
	for _, d := range dirs {
		d = filepath.Clean(d)
		m, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
			return !strings.HasPrefix(m.Mountpoint, d+"/"), false
		})
		if err != nil {
			return err
		}
		mounts = append(mounts, m...)
	}
	slices.SortFunc(mounts, func(a, b *mountinfo.Info) int {
		return strings.Count(b.Mountpoint, "/") - strings.Count(a.Mountpoint, "/")
	})
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("%s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}

// nodeLinks are the interfaces a node creates: the pod bridge and the
// overlay device. The pods' veths are attached to the bridge.
var nodeLinks = []string{cni.Bridge, "flannel.1"} //nolint:gochecknoglobals // fixed table

// deleteLinks deletes the veths on the pod bridge, then the bridge and the
// VXLAN device.
func deleteLinks() error {
	var errs []error
	if br, err := netlink.LinkByName(cni.Bridge); err == nil {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				errs = append(errs, ignoreGone(netlink.LinkDel(l)))
			}
		}
	}
	for _, name := range nodeLinks {
		if l, err := netlink.LinkByName(name); err == nil {
			errs = append(errs, ignoreGone(netlink.LinkDel(l)))
		}
	}
	return errors.Join(errs...)
}

func ignoreGone(err error) error {
	var nf netlink.LinkNotFoundError
	if err == nil || errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

// deleteRoutes deletes the blackhole routes a node adds for its cluster
// and service CIDRs, which carry monokube's route protocol.
func deleteRoutes() error {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Protocol: cni.RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range routes {
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("%s: %w", r.Dst, err))
		}
	}
	return errors.Join(errs...)
}

// cleanIptables removes the node's chains, and every rule that jumps to
// them, from the IPv4 and IPv6 tables, one transaction per family that
// deletes those rules only.
func cleanIptables() error {
	var errs []error
	for _, family := range []string{"iptables", "ip6tables"} {
		saved, err := exec.Command(family + "-save").Output()
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				continue
			}
			errs = append(errs, fmt.Errorf("%s-save: %w", family, err))
			continue
		}
		script, changed := deleteScript(string(saved))
		if !changed {
			continue
		}
		cmd := exec.Command(family+"-restore", "--noflush")
		cmd.Stdin = strings.NewReader(script)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			errs = append(errs, fmt.Errorf("%s-restore: %w: %s", family, err, strings.TrimSpace(stderr.String())))
		}
	}
	return errors.Join(errs...)
}
