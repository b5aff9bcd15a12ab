package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
var ErrLocked = errors.New("held by another monokube")

// errHeld starts the message of a node lock another process holds.
var errHeld = errors.New("another monokube")

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
	f, err := flock(l.VersionsLock(), how)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// flock opens path (0600, never through a symlink, not inherited by
// children) and takes an flock on it; ErrLocked if how has LOCK_NB and
// another process holds it. Closing the file releases the lock.
func flock(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
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
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// TouchVersion marks a version directory as just used: the sweeper spares
// directories used within its grace period (a process that found its
// binaries there still has to exec them).
func TouchVersion(dir string) error {
	now := time.Now()
	return os.Chtimes(dir, now, now)
}

// nodeLockName is the file, in the data dir and in the run dir, that a
// running server or agent holds an flock on, with its PID in it.
const nodeLockName = ".monokube.lock"

// NodeLock keeps a second monokube server or agent off the data dir and
// run dir of a running one: the two would share etcd, containerd's socket
// and the kubelet's state, and fail in ways that name none of that.
type NodeLock struct {
	layout Layout
	held   map[string]*os.File
}

// NewNodeLock returns the lock of l's data and run dirs, not yet taken.
func NewNodeLock(l Layout) *NodeLock { return &NodeLock{layout: l, held: map[string]*os.File{}} }

// Early locks each of the dirs that exists, before a role's checks, so
// that a second node hears about the first one rather than about its
// ports. Only another holder is an error here: a dir the lock cannot be
// made in (read-only, not root's) is left to the checks, whose messages
// say what to do, and to Take.
func (n *NodeLock) Early() error { return n.take(false) }

// Take locks each of the dirs not locked by this process yet, once the
// role has made them; a dir that does not exist holds no running node. A
// dir another monokube holds is an error with its PID.
func (n *NodeLock) Take() error { return n.take(true) }

// take locks the dirs; strict makes every failure an error, not only
// another holder.
func (n *NodeLock) take(strict bool) error {
	for _, dir := range []string{n.layout.Data, n.layout.Run} {
		if n.held[dir] != nil {
			continue
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		f, err := lockPID(filepath.Join(dir, nodeLockName))
		switch {
		case err == nil:
			n.held[dir] = f
		case strict || errors.Is(err, errHeld):
			return err
		}
	}
	return nil
}

// Release lets go of every dir this lock holds.
func (n *NodeLock) Release() {
	for dir, f := range n.held {
		f.Close()
		delete(n.held, dir)
	}
}

// lockPID takes an flock on path and writes this process's PID into it,
// or says which process holds it.
func lockPID(path string) (*os.File, error) {
	f, err := flock(path, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, ErrLocked) {
		pid, _ := os.ReadFile(path)
		return nil, fmt.Errorf("%w (PID %s) runs on %s: stop it first (systemctl stop monokube, or monokube killall), "+
			"or give this one another --data-dir and --run-dir", errHeld, strings.TrimSpace(string(pid)), filepath.Dir(path))
	}
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// LockFile takes an exclusive flock on path, waiting for it, and returns
// the function that releases it: for files that a running node and a
// command beside it both rewrite.
func LockFile(path string) (func(), error) {
	f, err := flock(path, syscall.LOCK_EX)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// NodeRunning reports whether a monokube server or agent holds l's data
// dir (see NodeLock).
func (l Layout) NodeRunning() bool {
	f, err := flock(filepath.Join(l.Data, nodeLockName), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		f.Close()
	}
	return errors.Is(err, ErrLocked)
}
