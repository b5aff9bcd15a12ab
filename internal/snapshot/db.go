package snapshot

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// dbInfo is what checkDB finds in an etcd snapshot.
type dbInfo struct {
	Revision int64
	Keys     int
	Storage  string
}

// checkDB checks the etcd snapshot db at path (as etcd's Snapshot API
// streams it: the backend, then its SHA-256): the hash, then the backend's
// own consistency (bbolt's check, as `etcdutl snapshot status` does).
func checkDB(path string) (dbInfo, error) {
	if err := checkTrailer(path); err != nil {
		return dbInfo{}, err
	}
	st, err := etcdutl.NewV3(zap.NewNop()).Status(path)
	if err != nil {
		return dbInfo{}, fmt.Errorf("etcd's data in it does not read: %w", err)
	}
	return dbInfo{Revision: st.Revision, Keys: st.TotalKey, Storage: st.Version}, nil
}

// checkTrailer compares the SHA-256 at the end of the file at path with
// the bytes before it.
func checkTrailer(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	n := st.Size() - sha256.Size
	if n <= 0 {
		return fmt.Errorf("etcd's data in it is empty (%d bytes)", st.Size())
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		return err
	}
	trailer := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, trailer); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), trailer) {
		return fmt.Errorf("etcd's data in it does not match its own SHA-256")
	}
	return nil
}

// FromBackend is a Source for a stopped etcd member: it copies the
// backend at backendPath (member/snap/db) in one read transaction and
// appends its SHA-256, the form etcd's Snapshot API streams.
func FromBackend(backendPath string) Source {
	return func(dst io.Writer) error {
		db, err := bolt.Open(backendPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("open etcd data %s (is etcd of this server still running?): %w", backendPath, err)
		}
		defer db.Close()
		h := sha256.New()
		if err := db.View(func(tx *bolt.Tx) error {
			_, err := tx.WriteTo(io.MultiWriter(dst, h))
			return err
		}); err != nil {
			return fmt.Errorf("copy etcd data %s: %w", backendPath, err)
		}
		_, err = dst.Write(h.Sum(nil))
		return err
	}
}

// Source writes an etcd snapshot (backend, then SHA-256) to w: etcd's
// Snapshot API of a running member, or FromBackend.
type Source func(w io.Writer) error

// createSynced creates a new hidden file in dir (os.CreateTemp's
// pattern, 0600), lets write fill it and fsyncs it, and returns its path;
// on failure it removes the file.
func createSynced(dir, pattern string, write func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// extractDB copies the etcd.db entry of the snapshot at path to a new
// hidden file in dir, checking every entry on the way, and returns the
// file's path and what the snapshot holds. It needs about the size of
// etcd's data free in dir.
func extractDB(path, dir string) (string, *contents, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	removeStale(dir, staleAge) // what a killed check or restore left
	var c *contents
	db, err := createSynced(dir, ".restore-*.db"+partialSuffix, func(w io.Writer) error {
		var err error
		c, err = read(path, true, w)
		return err
	})
	if errors.Is(err, syscall.ENOSPC) {
		return "", nil, fmt.Errorf("check snapshot %s: it needs room for etcd's data in %s: %w", path, dir, err)
	}
	if err != nil {
		return "", nil, err
	}
	return db, c, nil
}

// removeStale deletes what an interrupted Save or check left in dir
// (hidden partial files) once it is older than age.
func removeStale(dir string, age time.Duration) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !isPartial(e.Name()) || time.Since(info.ModTime()) < age {
			continue
		}
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
}
