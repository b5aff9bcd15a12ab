package harness

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Snapshot is what a node has made on its machine, as sorted lines per
// kind: processes, mounts, links, routes, iptables rules, cgroups and the
// files in its private directories.
type Snapshot map[string][]string

// counters are iptables-save's packet and byte counts.
var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// Snapshot records the node's state now, seen from inside its namespaces.
func (n *Node) Snapshot() Snapshot {
	n.t.Helper()
	s := Snapshot{
		"mounts":   n.inside("awk '{print $5, $9}' /proc/self/mountinfo"),
		"links":    n.inside("ip -o link | awk '{print $2}'"),
		"routes":   n.inside("ip route show table all; ip -6 route show table all"),
		"iptables": n.inside("{ iptables-save; ip6tables-save; } | grep -v '^#' || true"),
	}
	s["iptables"] = slices.DeleteFunc(s["iptables"], emptyTableLine)
	// The kernel adds a link-local IPv6 address to eth0 a moment after
	// the namespace is made: not the node's doing.
	s["routes"] = slices.DeleteFunc(s["routes"], func(l string) bool { return strings.Contains(l, "fe80::") })
	var procs []string
	for _, pid := range netnsPIDs(n.NS.Name) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		procs = append(procs, fmt.Sprintf("%d %s", pid, strings.TrimSpace(string(comm))))
	}
	s["processes"] = procs
	for _, h := range cgroupHierarchies(n.t) {
		s["cgroups"] = append(s["cgroups"], cgroupDirs(filepath.Join(h, n.CgroupRoot))...)
	}
	_ = filepath.WalkDir(filepath.Join(n.Dir, "host"), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			s["files"] = append(s["files"], p)
		}
		return nil
	})
	for k := range s {
		slices.Sort(s[k])
	}
	return s
}

// emptyTableLine tells the iptables-save lines that only say a table and
// its built-in chains exist (iptables creates them on first use) from the
// rules and chains a node adds.
func emptyTableLine(l string) bool {
	f := strings.Fields(counters.ReplaceAllString(l, ""))
	return len(f) == 0 || strings.HasPrefix(f[0], "*") || f[0] == "COMMIT" ||
		strings.HasPrefix(f[0], ":") && len(f) > 1 && f[1] == "ACCEPT" // a built-in chain, default policy
}

// inside runs a shell script in the node and returns its output lines.
func (n *Node) inside(script string) []string {
	n.t.Helper()
	cmd := n.Command(Options{}, "sh", "-c", script)
	out, err := cmd.Output()
	if err != nil {
		n.t.Fatalf("%s: %v", script, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// Diff lists, per kind in kinds, the lines only before has and only after
// has; empty when they match.
func (before Snapshot) Diff(after Snapshot, kinds ...string) string {
	var b strings.Builder
	for _, k := range kinds {
		for _, l := range before[k] {
			if !slices.Contains(after[k], l) {
				fmt.Fprintf(&b, "%s: gone: %s\n", k, l)
			}
		}
		for _, l := range after[k] {
			if !slices.Contains(before[k], l) {
				fmt.Fprintf(&b, "%s: left behind: %s\n", k, l)
			}
		}
	}
	return b.String()
}

// WaitGone waits until the node's network namespace holds no process.
func (n *Node) WaitGone(timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(netnsPIDs(n.NS.Name)) > 0 {
		if time.Now().After(deadline) {
			n.t.Fatalf("processes still in node %s after %s: %v", n.NS.Name, timeout, netnsPIDs(n.NS.Name))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
