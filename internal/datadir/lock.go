package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// VersionsLock is the file under <data-dir>/data/ that serialises work on
// the unpacked version directories: the launcher and the helper-binary
// extraction hold it while they check, unpack and mark a directory in use,
// and the sweeper holds it while it decides what to remove, so a sweep
// never takes a binary that another monokube has just unpacked or is about
// to run.
func (l Layout) VersionsLock() string { return filepath.Join(l.Versions(), ".lock") }

// ErrLocked is returned by TryLockVersions when another process holds the
// lock.
var ErrLocked = errors.New("held by another monokube") //nolint:gochecknoglobals // sentinel error

// LockVersions takes the versions lock of the data dir, waiting for it,
// and returns the function that releases it. The lock is an flock, so a
// process killed while holding it releases it with its last descriptor:
// nothing is left to block the next start.
func (l Layout) LockVersions() (func(), error) { return l.lockVersions(syscall.LOCK_EX) }

// TryLockVersions takes the versions lock if it is free and returns
// ErrLocked if it is not.
func (l Layout) TryLockVersions() (func(), error) {
	return l.lockVersions(syscall.LOCK_EX | syscall.LOCK_NB)
}

func (l Layout) lockVersions(how int) (func(), error) {
	if err := os.MkdirAll(l.Versions(), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.VersionsLock(), err)
	}
	f, err := os.OpenFile(l.VersionsLock(), os.O_RDONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.VersionsLock(), err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, ErrLocked
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", l.VersionsLock(), err)
	}
	return func() { f.Close() }, nil
}

// TouchVersion marks a version directory as just used: the sweeper spares
// directories used within its grace period (a process that found its
// binaries there still has to exec them).
func TouchVersion(dir string) error {
	now := time.Now()
	return os.Chtimes(dir, now, now)
}
