package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgroupHierarchies lists the mounted cgroup hierarchies under
// /sys/fs/cgroup: each v1 controller directory, or the unified root.
func cgroupHierarchies(t testing.TB) []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		t.Fatalf("list cgroup hierarchies: %v", err)
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() || e.Name() == "unified" {
			continue // symlinks like cpu -> cpu,cpuacct, and the empty v2 mount
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// NewCgroupRoot creates the cgroup /<name> in every hierarchy for a node's
// kubelet (--cgroup-root) and, at cleanup, kills every process left in it
// (containers live in pod namespaces the node's netns cannot list) and
// removes the whole tree.
func NewCgroupRoot(t testing.TB, name string) string {
	t.Helper()
	hier := cgroupHierarchies(t)
	for _, h := range hier {
		if err := os.MkdirAll(filepath.Join(h, name), 0o755); err != nil {
			t.Fatalf("create cgroup %s: %v", name, err)
		}
	}
	t.Cleanup(func() {
		// On a hybrid host runc and the kubelet also make the node's
		// cgroups in the v2 mount (unified), which this never creates.
		for _, h := range append(hier, "/sys/fs/cgroup/unified") {
			if err := removeCgroupTree(filepath.Join(h, name)); err != nil {
				t.Errorf("cgroup cleanup: %v", err)
			}
		}
	})
	return "/" + name
}

// removeCgroupTree kills the processes in root and below, then removes the
// directories deepest first, retrying while processes exit.
func removeCgroupTree(root string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		dirs := cgroupDirs(root)
		for _, d := range dirs {
			killProcs(filepath.Join(d, "cgroup.procs"))
		}
		var last error
		for _, d := range dirs { // deepest first
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				last = err
			}
		}
		if last == nil || time.Now().After(deadline) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func cgroupDirs(root string) []string {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

func killProcs(procsFile string) {
	b, err := os.ReadFile(procsFile)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// killNetnsProcs kills every process in the network namespace: monokube,
// containerd and the shims, which run in their own process groups.
func killNetnsProcs(ns string) {
	for _, pid := range netnsPIDs(ns) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// netnsPIDs lists the processes in network namespace ns.
func netnsPIDs(ns string) []int {
	out, err := runOut("ip", "netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

// cgroupMountScript remounts the host's cgroup hierarchies inside a node:
// The node's mount namespace has a fresh sysfs at /sys for its network
// namespace, which hides the cgroup mounts under /sys/fs/cgroup. Mounting
// a hierarchy again with the same options attaches the same hierarchy.
func cgroupMountScript(t testing.TB) string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatalf("read mounts: %v", err)
	}
	var s strings.Builder
	s.WriteString("mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup\n")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[1], "/sys/fs/cgroup/") {
			continue
		}
		switch f[2] {
		case "cgroup":
			fmt.Fprintf(&s, "mkdir -p %s; mount -t cgroup -o %s cgroup %s\n", f[1], cgroupOptions(f[3]), f[1])
		case "cgroup2":
			fmt.Fprintf(&s, "mkdir -p %s; mount -t cgroup2 cgroup2 %s\n", f[1], f[1])
		}
	}
	return s.String()
}

// cgroupOptions keeps the options that select a v1 hierarchy.
func cgroupOptions(opts string) string {
	var keep []string
	named := true
	for _, o := range strings.Split(opts, ",") {
		switch {
		case o == "rw" || o == "ro" || strings.HasPrefix(o, "relatime") || o == "nosuid" || o == "nodev" || o == "noexec":
		case strings.HasPrefix(o, "name="):
			keep = append(keep, o)
		default:
			keep = append(keep, o)
			named = false
		}
	}
	if named {
		keep = append([]string{"none"}, keep...)
	}
	return strings.Join(keep, ",")
}

// hostChains are the host's iptables chains (table/chain), or nil where
// iptables-save is missing.
func hostChains() map[string]bool {
	out, err := runOut("iptables-save")
	if err != nil {
		return nil
	}
	chains := map[string]bool{}
	table := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			chains[table+"/"+strings.Fields(line[1:])[0]] = true
		}
	}
	return chains
}

// checkNoResidue fails the test if anything a node made outlived its
// cleanup: a network namespace, a cgroup, an iptables chain on the host,
// or a mount under its directory visible on the host.
func checkNoResidue(t testing.TB, netns, dir string, chainsBefore map[string]bool) {
	for c := range hostChains() {
		if !chainsBefore[c] {
			t.Errorf("iptables chain %s appeared on the host", c)
		}
	}
	if out, err := runOut("ip", "netns", "list"); err == nil && slices.Contains(strings.Fields(out), netns) {
		t.Errorf("network namespace %s left behind", netns)
	}
	for _, h := range cgroupHierarchies(t) {
		if _, err := os.Stat(filepath.Join(h, netns)); err == nil {
			t.Errorf("cgroup left behind: %s", filepath.Join(h, netns))
		}
	}
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil && strings.Contains(string(mounts), dir) {
		t.Errorf("mounts under %s visible on the host after cleanup", dir)
	}
}

// Wipe kills every process the node left running after it stopped (shims,
// containers) and removes its data and run dirs except the unpacked
// binary: what an uninstall leaves, so the machine can join afresh.
func (n *Node) Wipe() {
	n.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		killNetnsProcs(n.NS.Name)
		left := len(netnsPIDs(n.NS.Name))
		for _, h := range cgroupHierarchies(n.t) {
			for _, d := range cgroupDirs(filepath.Join(h, n.CgroupRoot)) {
				killProcs(filepath.Join(d, "cgroup.procs"))
				if b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs")); len(strings.TrimSpace(string(b))) > 0 {
					left++
				}
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("processes of node %s still running after 20 s", n.NS.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The node's mounts (container root filesystems, volumes) live in its
	// own mount namespace: unmount them there first.
	n.inside(fmt.Sprintf(`awk '{print $5}' /proc/self/mountinfo | grep -E '^(%s|%s)/' | sort -r | xargs -r umount -l`, n.DataDir, n.RunDir))
	for _, d := range []string{filepath.Join(n.DataDir, "agent"), filepath.Join(n.DataDir, "server"), n.RunDir} {
		if err := os.RemoveAll(d); err != nil {
			n.t.Fatalf("wipe %s: %v", d, err)
		}
	}
}
