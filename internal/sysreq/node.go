package sysreq

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Node is what a node needs to know about its machine to adapt to it.
type Node struct {
	CgroupV2       bool // unified hierarchy at /sys/fs/cgroup
	Systemd        bool // systemd is the init system
	CapSysResource bool // may lower oom_score_adj and raise limits
	SwapOn         bool
	Overlay        bool // overlayfs is available
	BrNetfilter    bool // bridged traffic passes iptables
	// HostNetns is true only when monokube can tell it runs in the
	// machine's initial network namespace.
	HostNetns bool
}

// Files are the kernel interfaces ProbeNode reads, replaceable in tests.
type Files struct {
	Root string // prefix for every path, "" on a real machine
}

func (f Files) read(path string) ([]byte, error) { return os.ReadFile(f.Root + path) }

func (f Files) exists(path string) bool {
	_, err := os.Stat(f.Root + path)
	return err == nil
}

// ProbeNode inspects the machine. It fails only where no node can work:
// no cgroups at all.
func ProbeNode(f Files) (Node, error) {
	n := Node{
		CgroupV2:    f.exists("/sys/fs/cgroup/cgroup.controllers"),
		Systemd:     f.exists("/run/systemd/system"),
		Overlay:     hasFilesystem(f, "overlay"),
		BrNetfilter: f.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"),
		SwapOn:      swapOn(f),
	}
	if !n.CgroupV2 && !f.exists("/sys/fs/cgroup/memory") {
		return n, errors.New("no cgroups found under /sys/fs/cgroup: containers need them; mount cgroup v2 (or the v1 controllers) and enable them in the kernel")
	}
	caps, err := effectiveCaps(f)
	if err != nil {
		return n, err
	}
	n.CapSysResource = caps&(1<<24) != 0 // CAP_SYS_RESOURCE
	n.HostNetns = sameNetns(f)
	return n, nil
}

// CgroupDriver is the driver the kubelet and runc must share: systemd's
// where systemd manages a unified hierarchy, cgroupfs otherwise.
func (n Node) CgroupDriver() string {
	if n.CgroupV2 && n.Systemd {
		return "systemd"
	}
	return "cgroupfs"
}

// Adaptations says, once each, what the node changes to fit this machine.
func (n Node) Adaptations() []string {
	var out []string
	if !n.CapSysResource {
		out = append(out, "CAP_SYS_RESOURCE is missing (a container or restricted host): containers keep oom_score_adj at or above containerd's and the kubelet leaves its own at 0")
	}
	if !n.CgroupV2 {
		out = append(out, "this host uses cgroup v1, which Kubernetes deprecates: running with failCgroupV1=false; move to cgroup v2 when you can")
	}
	if n.SwapOn {
		out = append(out, "swap is on: the kubelet runs with it (swapBehavior NoSwap: pods get no swap) instead of refusing to start")
	}
	if !n.Overlay {
		out = append(out, "overlayfs is not available: using the native snapshotter (slower, more disk); load the overlay module for better performance")
	}
	if !n.BrNetfilter {
		out = append(out, "br_netfilter is not loaded: a pod reaching a Service backed by a pod on the same node may fail; run modprobe br_netfilter")
	}
	if !n.HostNetns {
		out = append(out, "not in (or cannot confirm) the host's network namespace: kube-proxy leaves the host-wide conntrack settings alone")
	}
	return out
}

func hasFilesystem(f Files, name string) bool {
	data, err := f.read("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if fs := strings.Fields(line); len(fs) > 0 && fs[len(fs)-1] == name {
			return true
		}
	}
	return false
}

func swapOn(f Files) bool {
	data, err := f.read("/proc/swaps")
	if err != nil {
		return false
	}
	return len(bytes.Split(bytes.TrimSpace(data), []byte("\n"))) > 1
}

func effectiveCaps(f Files) (uint64, error) {
	data, err := f.read("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("read capabilities: no CapEff line in /proc/self/status")
}

// sameNetns compares this process's network namespace with PID 1's; where
// PID 1's is unreadable the answer is "cannot tell", reported as false.
func sameNetns(f Files) bool {
	self, err1 := os.Readlink(f.Root + "/proc/self/ns/net")
	init, err2 := os.Readlink(f.Root + "/proc/1/ns/net")
	return err1 == nil && err2 == nil && self == init
}
