package killall

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/monokube/monokube/internal/proc"
)

// Bounds on waiting for processes to go.
const (
	stopGrace   = 30 * time.Second // monokube stops its components in order
	killTimeout = 30 * time.Second
)

// stopProcesses asks monokube (and the containerd it runs) to stop, then
// kills the shims, the containers below them and anything left in the
// node's pod cgroups.
func stopProcesses(t Target, log *slog.Logger) error {
	mk := monokubes(t)
	if len(mk) > 0 {
		log.Info("stopping monokube", "pids", mk)
		signal(mk, syscall.SIGTERM, func() []int { return monokubes(t) })
		if !waitGone(mk, stopGrace) {
			log.Warn("monokube did not stop in time; killing it", "grace", stopGrace)
		}
	}
	deadline := time.Now().Add(killTimeout)
	for {
		left := leftovers(t)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still running after %s of SIGKILL (stuck in the kernel, e.g. on a hung mount?): check them with ps -o pid,stat,wchan,args -p PID, then run killall again", left, killTimeout)
		}
		signal(left, syscall.SIGKILL, func() []int { return leftovers(t) })
		time.Sleep(100 * time.Millisecond)
	}
}

// monokubes are the node's monokube processes (server or agent, and the
// containerd it supervises), not this one and not clients (kubectl, ctr).
func monokubes(t Target) []int {
	var out []int
	for pid, exe := range nodeBinaries(t) {
		if filepath.Base(exe) == "monokube" {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// leftovers are every process of the node: its binaries, all their
// descendants (containers are children of their shims), and whatever runs
// in its pod cgroups.
func leftovers(t Target) []int {
	roots := nodeBinaries(t)
	children := childMap()
	spare := ancestors()
	seen := map[int]bool{}
	var walk func(int)
	walk = func(pid int) {
		if seen[pid] || pid <= 1 {
			return
		}
		seen[pid] = true
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for pid := range roots {
		walk(pid)
	}
	for _, pid := range cgroupProcs(t.CgroupRoot) {
		walk(pid)
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		if !spare[pid] {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// nodeBinaries maps each of the node's processes to its binary: those in
// this mount namespace running a binary under <data-dir>/data/, except
// monokube run as a client (kubectl, crictl, ctr, killall itself).
func nodeBinaries(t Target) map[int]string {
	ownNS, _ := os.Readlink("/proc/self/ns/mnt")
	out := proc.Binaries(t.binRoot())
	for pid, exe := range out {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if ns != ownNS || filepath.Base(exe) == "monokube" && !daemonRole(pid) {
			delete(out, pid)
		}
	}
	return out
}

// daemonRole reports whether monokube process pid runs as server, agent
// or the containerd a node supervises.
func daemonRole(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 1 && slices.Contains([]string{"server", "agent", "containerd"}, args[1])
}

// ancestors are this process and its parents, which killall must survive.
func ancestors() map[int]bool {
	out := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !out[pid]; {
		out[pid] = true
		ppid, ok := parent(pid)
		if !ok {
			break
		}
		pid = ppid
	}
	return out
}

// childMap maps each process to its children.
func childMap() map[int][]int {
	out := map[int][]int{}
	for _, pid := range proc.PIDs() {
		if ppid, ok := parent(pid); ok {
			out[ppid] = append(out[ppid], pid)
		}
	}
	return out
}

// stat reads a process's state and parent PID from /proc/PID/stat, whose
// second field (the command name, in parentheses) may itself hold spaces
// and parentheses.
func stat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}

// parent is pid's parent PID.
func parent(pid int) (int, bool) {
	_, ppid, ok := stat(pid)
	return ppid, ok
}

// signal sends sig to each of pids that current, called once a pidfd
// holds each of them, still finds: the pidfd pins the process, so a PID
// the kernel gave to an unrelated process between the scan and the signal
// is checked afresh, and a process that exits after the check cannot be
// replaced under the signal. Without pidfds (Linux before 5.3) the check
// and the kill are as close as plain kill(2) allows.
func signal(pids []int, sig syscall.Signal, current func() []int) {
	fds := map[int]int{}
	for _, pid := range pids {
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			fds[pid] = fd
		} else if errors.Is(err, unix.ENOSYS) {
			fds[pid] = -1
		}
	}
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				_ = unix.Close(fd)
			}
		}
	}()
	for _, pid := range current() {
		switch fd, ok := fds[pid]; {
		case !ok:
		case fd < 0:
			_ = syscall.Kill(pid, sig)
		default:
			_ = unix.PidfdSendSignal(fd, sig, nil, 0)
		}
	}
}

// running reports whether pid exists and is not a zombie waiting for its
// parent to reap it.
func running(pid int) bool {
	state, _, ok := stat(pid)
	return ok && state != "Z"
}

// waitGone waits until none of pids runs.
func waitGone(pids []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		alive := slices.ContainsFunc(pids, running)
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
