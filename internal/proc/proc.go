// Package proc reads the process table (/proc): which processes run, and
// which binaries they run. Killall and the version sweeper ask it.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Binaries maps each process (but this one) running a binary whose path
// starts with prefix to that binary. A binary deleted since it started
// still counts.
func Binaries(prefix string) map[int]string {
	out := map[int]string{}
	for _, pid := range PIDs() {
		if pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue // gone, or a kernel thread
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		if strings.HasPrefix(exe, prefix) {
			out[pid] = exe
		}
	}
	return out
}

// PIDs lists the processes in /proc.
func PIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
