package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/monokube/monokube/internal/fsutil"
)

// markerName is the file that says a data dir is monokube's: written at a
// node's first start, required by killall and uninstall, which unmount,
// kill and remove under the dir.
const markerName = ".monokube"

const markerText = "This directory is a monokube data dir: monokube killall and uninstall act on it.\n"

// Marker is the file that marks the data dir as monokube's.
func (l Layout) Marker() string { return filepath.Join(l.Data, markerName) }

// mark writes the marker once.
func (l Layout) mark() error {
	if fsutil.Exists(l.Marker()) {
		return nil
	}
	return fsutil.WriteFile(l.Marker(), []byte(markerText), 0o600)
}

// secure refuses a data dir that another user could write to (see
// CheckTrusted), creates it and makes it 0700, so that nothing in it (keys,
// binaries monokube runs as root, volumes) is open to other local users.
func (l Layout) secure() error {
	if err := os.MkdirAll(l.Data, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", l.Data, err)
	}
	if err := CheckTrusted(l.Data); err != nil {
		return err
	}
	if err := os.Chmod(l.Data, 0o700); err != nil {
		return fmt.Errorf("make %s private: %w", l.Data, err)
	}
	return nil
}

// Owned refuses a data dir that monokube did not make: killall and
// uninstall act only on a marked one, on one an older monokube left
// (version.json beside server/ or agent/), or on one that holds nothing but
// what the launcher unpacked (a node that failed before its first start:
// a wrong server or an expired token). A missing dir is fine: nothing of a
// node is there.
func (l Layout) Owned() error {
	if _, err := os.Stat(l.Data); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if fsutil.Exists(l.Marker()) || l.onlyUnpacked() ||
		fsutil.Exists(l.VersionFile()) && (fsutil.Exists(l.Server()) || fsutil.Exists(l.Agent())) {
		return CheckTrusted(l.Data)
	}
	return fmt.Errorf("--data-dir %s is not a monokube data dir (no %s, which a node writes at its first start): give the node's data dir (data-dir in its config file)", l.Data, markerName)
}

// onlyUnpacked reports whether the data dir is empty or holds only data/
// with the launcher's version dirs (16 hex digits) and its lock in it.
func (l Layout) onlyUnpacked() bool {
	top, err := os.ReadDir(l.Data)
	top = slices.DeleteFunc(top, func(e os.DirEntry) bool { return e.Name() == nodeLockName })
	if err == nil && len(top) == 0 {
		return true
	}
	if err != nil || len(top) != 1 || top[0].Name() != filepath.Base(l.Versions()) {
		return false
	}
	versions, err := os.ReadDir(l.Versions())
	if err != nil {
		return false
	}
	lock := filepath.Base(l.VersionsLock())
	for _, v := range versions {
		if v.Name() == lock && v.Type().IsRegular() {
			continue
		}
		if !v.IsDir() || !isVersionName(v.Name()) {
			return false
		}
	}
	return true
}

func isVersionName(name string) bool {
	if len(name) != VersionNameLen {
		return false
	}
	for _, r := range name {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// Entries are the names monokube keeps at the top of a data dir; uninstall
// removes these and nothing else.
func (l Layout) Entries() []string {
	names := []string{markerName, nodeLockName}
	for _, p := range []string{l.Server(), l.Agent(), l.Versions(), l.VersionFile(), l.Storage()} {
		names = append(names, filepath.Base(p))
	}
	return names
}

// IsEntry reports whether name (at the top of the data dir) is monokube's:
// one of Entries, or a temp file of one.
func (l Layout) IsEntry(name string) bool {
	return slices.Contains(l.Entries(), name) || fsutil.IsTempName(name)
}

// CheckTrusted refuses path when someone other than root or this user
// could change what is in it: path and every directory above it must be
// owned by root or the effective user, and writable by no one else; a
// directory above path may be world-writable only with the sticky bit
// (/tmp), which keeps others from replacing what is in it.
func CheckTrusted(path string) error {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	euid := uint32(os.Geteuid())
	for p, first := resolved, true; ; p, first = filepath.Dir(p), false {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("check %s: %w", path, err)
		}
		if err := trusted(fi, euid, first); err != nil {
			fix := fmt.Sprintf("chown root: %s; chmod 0700 %s", p, p)
			if !first {
				fix = fmt.Sprintf("chown root: %s; chmod go-w %s", p, p)
			}
			return fmt.Errorf("%s: %s %w; only root may be able to change what monokube keeps and runs there (%s), or give another --data-dir",
				path, p, err, fix)
		}
		if p == "/" {
			return nil
		}
	}
}

// trusted checks one path component: self is the path itself, the others
// its parents.
func trusted(fi fs.FileInfo, euid uint32, self bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("has no owner")
	}
	if st.Uid != 0 && st.Uid != euid {
		return fmt.Errorf("is owned by uid %d", st.Uid)
	}
	writable := fi.Mode().Perm()&0o022 != 0
	if writable && (self || fi.Mode()&fs.ModeSticky == 0) {
		return fmt.Errorf("is writable by group or others (mode %04o)", fi.Mode().Perm())
	}
	return nil
}
