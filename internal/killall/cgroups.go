package killall

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// podCgroups are the kubelet's top pod cgroups under its cgroup root, for
// the cgroupfs and the systemd drivers.
var podCgroups = []string{"kubepods", "kubepods.slice"} //nolint:gochecknoglobals // fixed table

// hierarchies lists the mounted cgroup hierarchies: the unified root, or
// each v1 controller directory.
func hierarchies() []string {
	const base = "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(base, "cgroup.controllers")); err == nil {
		return []string{base}
	}
	entries, _ := os.ReadDir(base)
	var out []string
	for _, e := range entries {
		p := filepath.Join(base, e.Name())
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			continue // cpu -> cpu,cpuacct and the like
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// podCgroupDirs lists every directory of the node's pod cgroups, deepest
// first.
func podCgroupDirs(root string) []string {
	var dirs []string
	for _, h := range hierarchies() {
		for _, name := range podCgroups {
			_ = filepath.WalkDir(filepath.Join(h, root, name), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

// cgroupProcs lists the processes in the node's pod cgroups.
func cgroupProcs(root string) []int {
	var out []int
	for _, d := range podCgroupDirs(root) {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// removeCgroups removes the node's pod cgroups, deepest first, retrying
// briefly while the kernel finishes tearing down killed processes.
func removeCgroups(root string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var last error
		for _, d := range podCgroupDirs(root) {
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
