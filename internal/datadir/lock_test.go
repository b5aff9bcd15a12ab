package datadir

import (
	"errors"
	"os"
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
