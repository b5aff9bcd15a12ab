package sysreq

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupControllers checks the controllers the kubelet and runc need. On
// v1 the kubelet refuses to start without cpu, cpuacct, cpuset and memory
// (validateSystemRequirements in pkg/kubelet/cm/container_manager_linux.go),
// and pods' pid limits and device rules need pids and devices. On v2
// the kubelet uses what the root offers, so a missing one only warns.
func cgroupControllers(f Files, v2 bool) Result {
	if v2 {
		return cgroupV2Controllers(f)
	}
	return cgroupV1Controllers(f)
}

func cgroupV1Controllers(f Files) Result {
	const name = "cgroup controllers"
	var mounted, missing []string
	for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "devices"} {
		if f.exists("/sys/fs/cgroup/" + c) {
			mounted = append(mounted, c)
		} else {
			missing = append(missing, c)
		}
	}
	for _, c := range []string{"freezer", "blkio", "hugetlb"} {
		if f.exists("/sys/fs/cgroup/" + c) {
			mounted = append(mounted, c)
		}
	}
	switch {
	case len(mounted) == 0:
		return fail("cgroups", "none found under /sys/fs/cgroup: containers need them",
			"mount cgroup v2 (or the v1 controllers) and enable them in the kernel")
	case len(missing) > 0:
		return fail(name, fmt.Sprintf("v1 without %s (mounted: %s): the kubelet and runc need them",
			strings.Join(missing, ", "), strings.Join(mounted, ", ")),
			"mount the missing controllers under /sys/fs/cgroup, or move to cgroup v2")
	}
	return ok(name, "v1: "+strings.Join(mounted, ", "))
}

func cgroupV2Controllers(f Files) Result {
	const name = "cgroup controllers"
	data, err := f.read("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return fail(name, fmt.Sprintf("cannot read them: %v", err), "mount cgroup v2 at /sys/fs/cgroup")
	}
	have := strings.Fields(string(data))
	var missing []string
	for _, c := range []string{"cpu", "memory", "pids"} {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return warn(name, fmt.Sprintf("v2 without %s (available: %s): pod limits on them are not enforced",
			strings.Join(missing, ", "), strings.Join(have, ", ")),
			"enable them (a container must be given them by its host; on a host, look for cgroup_disable= on the kernel command line)")
	}
	return ok(name, "v2: "+strings.Join(have, ", "))
}

// kernelModule says how the kernel has module name (loaded, built in, or
// loadable), or false where it cannot tell.
func kernelModule(f Files, name string) (string, bool) {
	if f.exists("/sys/module/" + name) {
		return "loaded", true
	}
	release, err := f.read("/proc/sys/kernel/osrelease")
	if err != nil {
		return "", false
	}
	dir := "/lib/modules/" + strings.TrimSpace(string(release))
	if listsModule(f, dir+"/modules.builtin", name) {
		return "built into the kernel", true
	}
	if listsModule(f, dir+"/modules.dep", name) {
		return "available as a module, loaded when needed", true
	}
	return "", false
}

// listsModule reports whether a modules.builtin or modules.dep file names
// the module: their lines start "kernel/<dir>/<name>.ko[.xz|.zst]".
func listsModule(f Files, file, name string) bool {
	data, err := f.read(file)
	return err == nil && bytes.Contains(data, []byte("/"+name+".ko"))
}

func vxlan(f Files) Result {
	if how, found := kernelModule(f, "vxlan"); found {
		return ok("vxlan", how)
	}
	return warn("vxlan", "cannot tell whether the kernel has it: flannel's pod network between nodes needs it",
		"run modprobe vxlan, or use --flannel-backend none with a CNI of your own")
}

func conntrack(f Files) Result {
	if how, found := kernelModule(f, "nf_conntrack"); found {
		return ok("nf_conntrack", how)
	}
	return warn("nf_conntrack", "cannot tell whether the kernel has it: kube-proxy's Service rules need connection tracking",
		"run modprobe nf_conntrack")
}

// ipForward checks IPv4 forwarding, which the node turns on at start if it
// is off: pod traffic to other nodes, Services and NodePorts is routed.
func ipForward(f Files) Result {
	const name, path = "ip_forward", "/proc/sys/net/ipv4/ip_forward"
	v, err := f.read(path)
	if err != nil {
		return fail(name, fmt.Sprintf("cannot read %s: %v", path, err), "mount /proc where monokube runs")
	}
	if strings.TrimSpace(string(v)) == "1" {
		return ok(name, "on")
	}
	if err := unix.Access(f.Root+path, unix.W_OK); errors.Is(err, unix.EROFS) {
		return fail(name, "off, and /proc/sys is read-only here: pods could not reach other nodes or Services",
			"turn it on from outside (sysctl -w net.ipv4.ip_forward=1 in this network namespace)")
	}
	return ok(name, "off: the node turns it on at start")
}

// Iptables checks the iptables commands kube-proxy runs and says which
// kernel backend (nf_tables or legacy) they drive.
func (c Checks) Iptables() Result {
	const name = "iptables"
	for _, bin := range []string{"iptables", "iptables-save", "iptables-restore"} {
		if _, err := c.LookPath(bin); err != nil {
			return fail(name, bin+" not found on PATH: kube-proxy needs it",
				"install the iptables package (apt-get install iptables)")
		}
	}
	out, err := c.Output("iptables", "--version")
	if err != nil {
		return warn(name, fmt.Sprintf("found, but iptables --version failed: %v", err),
			"check the iptables installation (kube-proxy runs it)")
	}
	// "iptables v1.8.9 (nf_tables)"; before 1.8 there was only legacy.
	version, backend, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(out)), "iptables "), " ")
	backend = strings.Trim(backend, "()")
	if backend == "" {
		backend = "legacy"
	}
	return ok(name, version+", "+backend+" backend")
}
