// Package launcher is all the `monokube` users download: a small program
// carrying the real, much larger monokube binary zstd-compressed. At each
// start it makes sure that binary is extracted, once per version, to
// <data-dir>/data/<sha256 prefix>/monokube, and execs it with the same
// arguments, argv[0] and environment, so multicall names (kubectl, ctr,
// crictl) and every flag work unchanged. It links nothing of Kubernetes and
// finds the data dir the way the server does: --data-dir, then
// $MONOKUBE_DATA_DIR, then data-dir in the config file, then the default.
package launcher

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"

	"github.com/monokube/monokube/internal/datadir"
)

// Payload is the compressed binary and the SHA-256 of its uncompressed
// bytes (hex), both written by the Makefile.
type Payload struct {
	Zstd   []byte
	SHA256 string
}

// Exec extracts p if needed and replaces this process with it. It returns
// only on failure.
func Exec(p Payload, args, env []string) error {
	dir, err := DataDir(args, env)
	if err != nil {
		return err
	}
	path, err := Ensure(p, dir)
	if err != nil {
		return err
	}
	// `monokube install` copies the launcher, not the unpacked binary.
	if self, err := os.Executable(); err == nil {
		env = append(slices.DeleteFunc(slices.Clone(env), func(e string) bool {
			return strings.HasPrefix(e, "MONOKUBE_LAUNCHER=")
		}), "MONOKUBE_LAUNCHER="+self)
	}
	if err := syscall.Exec(path, args, env); err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	return nil
}

// Ensure returns the path of p's binary under dataDir, extracting it first
// if it is not there yet (or has the wrong size). It refuses a data dir,
// or a binary in it, that a user other than root could have changed.
func Ensure(p Payload, dataDir string) (string, error) {
	if len(p.SHA256) < datadir.VersionNameLen {
		return "", errors.New("this monokube was built without its payload checksum: rebuild it with make")
	}
	// Root execs what is here: only root may be able to change it.
	if err := datadir.CheckTrusted(dataDir); err != nil {
		return "", err
	}
	layout := datadir.Layout{Data: dataDir}
	dir := layout.VersionDir(p.SHA256)
	// The lock keeps the sweeper of a running older version from removing
	// the binary between here and the exec; the touch, after it.
	unlock, err := layout.LockVersions()
	if err != nil {
		return "", err
	}
	defer unlock()
	path, err := ensure(p, dir)
	if err != nil {
		return "", err
	}
	if err := datadir.TouchVersion(dir); err != nil {
		return "", fmt.Errorf("mark %s in use: %w", dir, err)
	}
	return path, nil
}

// ensure returns the path of p's binary in dir, unpacking it if needed.
func ensure(p Payload, dir string) (string, error) {
	path := filepath.Join(dir, "monokube")
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		if err := datadir.CheckTrusted(path); err != nil {
			return "", err
		}
		if size, ok := p.size(); !ok || uint64(fi.Size()) == size {
			return path, nil
		}
		// Damaged (it is renamed into place whole): unpack it again.
	}
	if err := extract(p, dir, path); err != nil {
		return "", fmt.Errorf("unpack monokube into %s: %w; free some space there or pick another --data-dir", dir, err)
	}
	return path, nil
}

// size is the length of p's binary, from its zstd frame header; the
// digest is checked at extraction only, since hashing 240 MB at every
// start (each `monokube kubectl`) would cost a second or more.
func (p Payload) size() (uint64, bool) {
	var h zstd.Header
	if err := h.Decode(p.Zstd); err != nil || !h.HasFCS {
		return 0, false
	}
	return h.FrameContentSize, true
}

// extract decompresses p beside path, checks its digest and renames it into
// place, so an interrupted or concurrent extraction never leaves a partial
// binary behind.
func extract(p Payload, dir, path string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".monokube-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := decompress(p, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// decompress writes p's binary to w and verifies its digest.
func decompress(p Payload, w io.Writer) error {
	zr, err := zstd.NewReader(bytes.NewReader(p.Zstd), zstd.WithDecoderMaxMemory(1<<31))
	if err != nil {
		return err
	}
	defer zr.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), zr); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("payload digest %s, want %s: the launcher binary is damaged; download it again", got, p.SHA256)
	}
	return nil
}
