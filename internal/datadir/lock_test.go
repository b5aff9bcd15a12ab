package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The versions lock excludes a second holder until the first lets go, and
// it is a file a killed holder cannot leave locked (flock on a descriptor).
func TestVersionsLock(t *testing.T) {
	l := Layout{Data: t.TempDir()}
	unlock, err := l.LockVersions()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryLockVersions(); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLockVersions while held = %v, want ErrLocked", err)
	}
	unlock()
	again, err := l.TryLockVersions()
	if err != nil {
		t.Fatalf("TryLockVersions after release = %v", err)
	}
	again()
	fi, err := os.Lstat(l.VersionsLock())
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file = %v, %v; want a regular file, 0600", fi, err)
	}
}

// A symlink planted as the lock is not followed.
func TestVersionsLockRefusesSymlink(t *testing.T) {
	l := Layout{Data: t.TempDir()}
	if err := os.MkdirAll(l.Versions(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", l.VersionsLock()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.LockVersions(); err == nil {
		t.Error("LockVersions followed a symlink")
	}
}

// A second holder of a node's dirs is refused with the first one's PID;
// a dir that does not exist yet is locked by the next Take once made.
func TestNodeLock(t *testing.T) {
	base := t.TempDir()
	l := Layout{Data: filepath.Join(base, "data"), Run: filepath.Join(base, "run")}
	if err := os.Mkdir(l.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	first := NewNodeLock(l)
	if err := first.Take(); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(l.Run, 0o700); err != nil {
		t.Fatal(err)
	}
	second := NewNodeLock(Layout{Data: filepath.Join(base, "other"), Run: l.Run})
	if err := second.Take(); err != nil {
		t.Fatalf("run dir taken before the first holder made it: %v", err)
	}
	second.Release()
	if err := first.Take(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(os.Getpid())
	for _, other := range []Layout{{Data: l.Data, Run: filepath.Join(base, "run2")}, {Data: filepath.Join(base, "d2"), Run: l.Run}} {
		if err := os.MkdirAll(other.Data, 0o700); err != nil {
			t.Fatal(err)
		}
		err := NewNodeLock(other).Take()
		if err == nil || !strings.Contains(err.Error(), "another monokube (PID "+pid+")") {
			t.Errorf("a second node on %+v = %v, want a refusal naming PID %s", other, err, pid)
		}
	}
	first.Release()
	again := NewNodeLock(l)
	if err := again.Take(); err != nil {
		t.Errorf("after release: %v", err)
	}
	again.Release()
	if !l.IsEntry(nodeLockName) {
		t.Error("uninstall would keep the lock file")
	}
}
