package upgrade

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/datadir"
)

// TestSweepKeepsWhatRuns runs a real process from an old version's
// directory and checks the sweeper keeps that directory until it exits.
func TestSweepKeepsWhatRuns(t *testing.T) {
	// The data dir is reached through a symlink, as a data disk often is.
	data := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), data); err != nil {
		t.Fatal(err)
	}
	dir := func(h string) string { return filepath.Join(data, "data", h) }
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"running", "unused", "current", "fresh"} {
		if err := os.MkdirAll(filepath.Join(dir(h), "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shim := filepath.Join(dir("running"), "bin", "shim")
	if err := os.WriteFile(shim, sh, 0o755); err != nil {
		t.Fatal(err)
	}
	// All but "fresh" were last used before the grace period.
	old := time.Now().Add(-2 * sweepGrace)
	for _, h := range []string{"running", "unused", "current"} {
		if err := os.Chtimes(dir(h), old, old); err != nil {
			t.Fatal(err)
		}
	}
	// A builtin that blocks, so the shell forks no child: a child killed
	// between fork and exec would still run the shim's binary.
	stdin, hold, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	cmd := exec.Command(shim, "-c", "read x")
	cmd.Stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	exe := fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)
	realShim, err := filepath.EvalSymlinks(shim)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p, _ := os.Readlink(exe); p == realShim {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shim did not start")
		}
	}

	s := NewSweeper(data, slog.New(slog.NewTextHandler(io.Discard, nil)), filepath.Join(dir("current"), "bin"))
	// While another monokube holds the versions lock, nothing goes.
	unlock, err := datadir.Layout{Data: data}.LockVersions()
	if err != nil {
		t.Fatal(err)
	}
	if next := s.Sweep(); next != lockedRetry {
		t.Errorf("a sweep that found the lock held looks again in %s, want %s", next, lockedRetry)
	}
	if _, err := os.Stat(dir("unused")); err != nil {
		t.Error("the sweeper removed a directory while the versions lock was held")
	}
	unlock()
	if next := s.Sweep(); next <= 0 || next > sweepGrace+time.Second {
		t.Errorf("a sweep that spared a fresh dir looks again in %s, want within the grace (%s)", next, sweepGrace)
	}
	for h, want := range map[string]bool{"running": true, "unused": false, "current": true, "fresh": true} {
		if _, err := os.Stat(dir(h)); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", h, err == nil, want)
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	s.Sweep()
	if _, err := os.Stat(dir("running")); err == nil {
		t.Error("the old version's directory stayed after its last process exited")
	}
}
