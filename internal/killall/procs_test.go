package killall

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopProcessesKillsTree runs a "shim" from a node's data dir that has
// a child running a binary from elsewhere, as a container does, and checks
// that both are found and stopped while an unrelated process is not.
func TestStopProcessesKillsTree(t *testing.T) {
	dir := t.TempDir()
	shim := filepath.Join(dir, "data", "0123456789abcdef", "bin", "sh")
	copyFile(t, "/bin/sh", shim)
	cmd := exec.Command(shim, "-c", "sleep 60 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	buf := make([]byte, 32)
	n, _ := out.Read(buf) // the child's PID, once it runs
	var child int
	if _, err := fmt.Sscan(string(buf[:n]), &child); err != nil {
		t.Fatalf("child pid %q: %v", buf[:n], err)
	}
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bystander.Process.Kill(); _ = bystander.Wait() }()
	// monokube from the node's dir run as a client (kubectl) is spared;
	// run as "server" (here: sh running a script named server) it is not.
	mk := filepath.Join(dir, "data", "0123456789abcdef", "monokube")
	copyFile(t, "/bin/sh", mk)
	if err := os.WriteFile(filepath.Join(dir, "server"), []byte("sleep 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := exec.Command(mk, "-c", "sleep 60")
	daemon := exec.Command(mk, "server")
	daemon.Dir = dir
	for _, c := range []*exec.Cmd{client, daemon} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	}
	waitExe(t, client.Process.Pid, mk)
	waitExe(t, daemon.Process.Pid, mk)

	target := Target{DataDir: dir, RunDir: filepath.Join(dir, "run"), CgroupRoot: "/monokube-test-none"}
	// The daemon's shell forks before it execs sleep: for that moment the
	// fork is a monokube too, so wait for it to settle.
	var got []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = monokubes(target); len(got) == 1 && got[0] == daemon.Process.Pid {
			break
		}
	}
	if len(got) != 1 || got[0] != daemon.Process.Pid {
		t.Fatalf("monokubes = %v, want only the daemon %d", got, daemon.Process.Pid)
	}
	if got := leftovers(target); len(got) < 3 {
		t.Fatalf("leftovers = %v, want the shim %d, its child %d and the daemon with its child", got, cmd.Process.Pid, child)
	}
	if err := stopProcesses(target, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("shim still running")
	}
	if waitGone([]int{child}, 5*time.Second) == false {
		t.Errorf("child %d still running", child)
	}
	if !running(bystander.Process.Pid) || !running(client.Process.Pid) {
		t.Error("an unrelated process or a kubectl-like client was stopped")
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// waitExe waits until pid runs exe.
func waitExe(t *testing.T, pid int, exe string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); p == exe {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d does not run %s", pid, exe)
		}
	}
}

// signal hits only what the re-check (made once a pidfd pins each PID)
// still finds: a PID that no longer belongs to the node is spared.
func TestSignalRechecks(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	signal([]int{pid}, syscall.SIGKILL, func() []int { return nil })
	time.Sleep(100 * time.Millisecond)
	if !running(pid) {
		t.Fatal("a process the re-check did not find was killed")
	}
	signal([]int{pid}, syscall.SIGKILL, func() []int { return []int{pid} })
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("sleep ended with %v, want killed", err)
	}
}
