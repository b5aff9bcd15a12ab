package sysreq

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/monokube/monokube/internal/systemd"
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
	// KernelDefaults: the kernel tunables the kubelet sets at start already
	// hold its values, so it can run with protectKernelDefaults (check,
	// never write, the host's settings).
	KernelDefaults bool
}

// kubeletSysctls are the tunables the kubelet sets (pkg/kubelet/cm,
// setupKernelTunables), with its values.
func kubeletSysctls() map[string]string {
	return map[string]string{
		"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
		"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
	}
}

// kernelDefaults reports whether every tunable the kubelet sets already
// holds its value.
func kernelDefaults(f Files) bool {
	for key, want := range kubeletSysctls() {
		got, err := f.read("/proc/sys/" + key)
		if err != nil || strings.TrimSpace(string(got)) != want {
			return false
		}
	}
	return true
}

// Files are the kernel interfaces the node checks read, replaceable in
// tests.
type Files struct {
	Root string // prefix for every path, "" on a real machine
}

func (f Files) read(path string) ([]byte, error) { return os.ReadFile(f.Root + path) }

func (f Files) exists(path string) bool {
	_, err := os.Stat(f.Root + path)
	return err == nil
}

// Capability bits in /proc/self/status (linux/capability.h).
const (
	capNetAdmin    = 12
	capSysAdmin    = 21
	capSysResource = 24
)

// Node inspects the machine for a node: what the node adapts to, and the
// verdict on each kernel requirement (capabilities, cgroups, kernel
// features and modules). It fails only where no node can work.
func (c Checks) Node() (Node, Report) {
	f := c.Files
	caps, capsErr := effectiveCaps(f)
	n := Node{
		CgroupV2:       f.exists("/sys/fs/cgroup/cgroup.controllers"),
		Systemd:        f.exists(systemd.Marker),
		CapSysResource: capsErr == nil && caps&(1<<capSysResource) != 0,
		SwapOn:         swapOn(f),
		Overlay:        hasFilesystem(f, "overlay"),
		BrNetfilter:    f.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"),
		HostNetns:      sameNetns(f),
		KernelDefaults: kernelDefaults(f),
	}
	return n, Report{
		capabilities(caps, capsErr), n.capSysResource(),
		n.cgroupVersion(), cgroupControllers(f, n.CgroupV2),
		n.swap(), n.overlay(), n.brNetfilter(), vxlan(f), conntrack(f),
		ipForward(f), n.netns(),
	}
}

// CgroupDriver is the driver the kubelet and runc must share: systemd's
// where systemd manages a unified hierarchy, cgroupfs otherwise.
func (n Node) CgroupDriver() string {
	if n.CgroupV2 && n.Systemd {
		return "systemd"
	}
	return "cgroupfs"
}

// Adaptations says, once each, what the node changes to fit this machine:
// the messages of the warnings about what it adapts to.
func (n Node) Adaptations() []string {
	r := Report{n.capSysResource(), n.cgroupVersion(), n.swap(), n.overlay(), n.brNetfilter(), n.netns()}
	return r.Warnings()
}

func (n Node) capSysResource() Result {
	const name = "CAP_SYS_RESOURCE"
	if n.CapSysResource {
		return ok(name, "present")
	}
	return warn(name, "missing (a container or restricted host): containers keep oom_score_adj at or above containerd's and the kubelet leaves its own at 0",
		"grant it (a container needs --privileged) for the usual OOM priorities")
}

func (n Node) cgroupVersion() Result {
	const name = "cgroups"
	if n.CgroupV2 {
		return ok(name, "v2 (unified hierarchy), "+n.CgroupDriver()+" driver")
	}
	return warn(name, "this host uses cgroup v1, which Kubernetes deprecates: running with failCgroupV1=false",
		"move to cgroup v2 when you can (systemd.unified_cgroup_hierarchy=1 on the kernel command line)")
}

func (n Node) swap() Result {
	if !n.SwapOn {
		return ok("swap", "off")
	}
	return warn("swap", "on: the kubelet runs with it (swapBehavior NoSwap: pods get no swap) instead of refusing to start",
		"nothing to do; turn swap off (swapoff -a, and in /etc/fstab) to run as upstream expects")
}

func (n Node) overlay() Result {
	if n.Overlay {
		return ok("overlayfs", "available: containerd uses the overlayfs snapshotter")
	}
	return warn("overlayfs", "not available: using the native snapshotter (slower, more disk)",
		"load the overlay module (modprobe overlay) for better performance")
}

func (n Node) brNetfilter() Result {
	if n.BrNetfilter {
		return ok("br_netfilter", "loaded")
	}
	return warn("br_netfilter", "not loaded: a pod reaching a Service backed by a pod on the same node may fail",
		"run modprobe br_netfilter")
}

func (n Node) netns() Result {
	const name = "network namespace"
	if n.HostNetns {
		return ok(name, "the host's: kube-proxy tunes the conntrack table")
	}
	return warn(name, "not the host's (or cannot confirm it): kube-proxy leaves the host-wide conntrack settings alone",
		"nothing to do unless conntrack limits matter; then run monokube in the host's network namespace")
}

func capabilities(caps uint64, err error) Result {
	const name = "capabilities"
	if err != nil {
		return fail(name, err.Error(), "mount /proc where monokube runs")
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capSysAdmin, "CAP_SYS_ADMIN"}, {capNetAdmin, "CAP_NET_ADMIN"}} {
		if caps&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fail(name, strings.Join(missing, " and ")+" missing: the node mounts volumes and sets up pod networking",
			"run as root with full capabilities (a container needs --privileged)")
	}
	return ok(name, "CAP_SYS_ADMIN and CAP_NET_ADMIN present")
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
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("read capabilities: %w", err)
			}
			return caps, nil
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
