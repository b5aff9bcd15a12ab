// Package fsutil writes monokube's files safely: atomically (temp file,
// fsync, rename, fsync of the directory), so a crash, a power loss or a
// full disk never leaves a half-written or vanished config, key or state
// file behind, and small JSON state files that are
// only a cache (a damaged one costs redoing work, never an error).
package fsutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// WriteFile writes data to path atomically with the given mode, creating
// the parent directory (0700).
func WriteFile(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := writeSync(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable only once the directory is: without this a
	// power loss can drop a new key while etcd's fsynced data survives.
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// File is one file of WriteFiles.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// WriteFiles writes files as WriteFile does, but renames them into place
// one right after the other, once all are written and fsynced: a reader
// that watches them (a key and its certificate) sees the old set or the
// new one, but for the moment between two renames.
func WriteFiles(files ...File) error {
	temps := make([]string, len(files))
	defer func() {
		for _, t := range temps {
			if t != "" {
				os.Remove(t) // no-op after a successful rename
			}
		}
	}()
	for i, f := range files {
		dir := filepath.Dir(f.Path)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".*")
		if err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		temps[i] = tmp.Name()
		if err := writeSync(tmp, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	for i, f := range files {
		if err := os.Rename(temps[i], f.Path); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	for _, f := range files {
		if err := SyncDir(filepath.Dir(f.Path)); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	return nil
}

// SyncDir makes a rename or a new file in dir durable (fsync of the directory).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// RemoveStaleTemps deletes the temp files WriteFile leaves in dirs when it
// is killed between create and rename (".<name>.<digits>": copies of keys,
// mode 0600). Call it at start, before anything writes there; missing dirs
// are fine.
func RemoveStaleTemps(dirs ...string) error {
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("clean %s: %w", dir, err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !IsTempName(e.Name()) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove a stale temp file: %w", err)
			}
		}
	}
	return nil
}

// IsTempName reports whether name is one of os.CreateTemp's names for the
// pattern ".<base>.*": a dot, a base, a dot and digits.
func IsTempName(name string) bool {
	i := strings.LastIndexByte(name, '.')
	if !strings.HasPrefix(name, ".") || i <= 1 || i == len(name)-1 {
		return false
	}
	for _, r := range name[i+1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func writeSync(f *os.File, data []byte, mode os.FileMode) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// RemoveTree removes the entries of dir for which only is true (all when
// only is nil), then dir itself unless something is left in it or it is a
// mount point (a disk, a tmpfs), which is emptied and stays. It returns
// the names it left. A missing dir is fine.
func RemoveTree(dir string, only func(name string) bool) (left []string, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range entries {
		if only != nil && !only(e.Name()) {
			left = append(left, e.Name())
			continue
		}
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	if len(left) > 0 {
		return left, errors.Join(errs...)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, syscall.EBUSY) {
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// LoadState decodes the JSON state file at path into v. A missing or
// damaged file leaves v as it was: state files only save repeated work.
func LoadState(path string, v any) {
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, v)
	}
}

// SaveState writes v to path as indented JSON, atomically, mode 0600.
func SaveState(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFile(path, data, 0o600)
}

// Exists reports whether path can be stat'ed.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
