package assets

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
)

const (
	// completeMarker is written last into a bin dir before it is renamed into
	// place: a bin dir without it is a leftover to replace.
	completeMarker = ".complete"
	// tmpPrefix names the temporary dirs extraction happens in.
	tmpPrefix = "bin.tmp-"
	// damaged is the advice for an embedded archive that cannot be read.
	damaged = "the monokube binary is damaged: reinstall or rebuild it"
)

// ExtractBin unpacks zstdTar, a zstd-compressed tar of helper binaries, into
// <dataDir>/data/<first 16 hex digits of sha256Hex, its digest>/bin and returns that
// directory. It extracts once per content: a complete dir from an earlier
// call is reused as it is. Extraction happens in a temporary dir beside the
// target that is renamed into place, so a crash or a full disk never leaves a
// half-filled bin dir behind. Files get mode 0755. Entries that would land
// outside the dir (absolute paths, "..") and entries other than regular files
// and directories are rejected.
//
// It holds the data dir's versions lock throughout, so it may remove
// temporary dirs an interrupted earlier run left behind, and it marks the
// dir as just used, so the sweeper leaves it to the caller that is about
// to run what is in it.
func ExtractBin(dataDir string, zstdTar []byte, sha256Hex string) (string, error) {
	if len(sha256Hex) < datadir.VersionNameLen {
		return "", fmt.Errorf("helper binaries: digest %q is too short: rebuild with make", sha256Hex)
	}
	layout := datadir.Layout{Data: dataDir}
	versionDir := layout.VersionDir(sha256Hex)
	binDir := filepath.Join(versionDir, "bin")
	unlock, err := layout.LockVersions()
	if err != nil {
		return "", fmt.Errorf("extract helper binaries to %s: %w%s", binDir, err, hint(err, dataDir))
	}
	defer unlock()
	if !complete(binDir) {
		if err := extractOnce(versionDir, binDir, zstdTar); err != nil {
			return "", fmt.Errorf("extract helper binaries to %s: %w%s", binDir, err, hint(err, dataDir))
		}
	}
	if err := datadir.TouchVersion(versionDir); err != nil {
		return "", fmt.Errorf("mark %s in use: %w", versionDir, err)
	}
	return binDir, nil
}

// complete reports whether binDir was fully extracted.
func complete(binDir string) bool {
	fi, err := os.Stat(filepath.Join(binDir, completeMarker))
	return err == nil && fi.Mode().IsRegular()
}

// extractOnce extracts into a temporary dir under versionDir and renames it
// to binDir. On error it removes what it created.
func extractOnce(versionDir, binDir string, zstdTar []byte) (err error) {
	if err := os.MkdirAll(versionDir, 0o755); err != nil {
		return err
	}
	removeStale(versionDir)
	tmp, err := os.MkdirTemp(versionDir, tmpPrefix)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
			_ = os.Remove(versionDir) // only if empty: it may hold more than bin
		}
	}()
	if err := untar(tmp, zstdTar); err != nil {
		return err
	}
	if err := finish(tmp); err != nil {
		return err
	}
	// A bin dir without the marker is a leftover from something other than
	// this function; replace it.
	if err := os.RemoveAll(binDir); err != nil {
		return err
	}
	if err := os.Rename(tmp, binDir); err != nil {
		return err
	}
	return fsutil.SyncDir(versionDir)
}

// finish makes a fully extracted tmp dir ready to rename: readable, marked
// complete, and on disk.
func finish(tmp string) error {
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		return err
	}
	return fsutil.SyncDir(tmp)
}

// removeStale deletes temporary dirs of interrupted extractions. Failing to
// is harmless (they only take space), so errors are ignored.
func removeStale(versionDir string) {
	stale, _ := filepath.Glob(filepath.Join(versionDir, tmpPrefix+"*"))
	for _, d := range stale {
		_ = os.RemoveAll(d)
	}
}

// untar writes the entries of the zstd-compressed tar into dir.
func untar(dir string, zstdTar []byte) error {
	zr, err := zstd.NewReader(bytes.NewReader(zstdTar), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("open zstd stream: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	files := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read embedded archive (%s): %w", damaged, err)
		}
		if err := writeEntry(dir, hdr, tr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			files++
		}
	}
	if files == 0 {
		return fmt.Errorf("embedded archive holds no files (%s)", damaged)
	}
	return nil
}

// writeEntry creates one tar entry under dir.
func writeEntry(dir string, hdr *tar.Header, r io.Reader) error {
	if !safeName(hdr.Name) {
		return fmt.Errorf("archive entry %q: absolute or \"..\" path refused", hdr.Name)
	}
	target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
	switch hdr.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(target, 0o755)
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return writeFile(target, r)
	default:
		return fmt.Errorf("archive entry %q: unsupported type %q (only files and directories)", hdr.Name, hdr.Typeflag)
	}
}

// safeName reports whether a tar entry name stays inside the extraction dir:
// relative, and without any ".." element.
func safeName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || !filepath.IsLocal(filepath.FromSlash(name)) {
		return false
	}
	return !slices.Contains(strings.Split(name, "/"), "..")
}

// writeFile writes r to a new file with mode 0755 and flushes it to disk.
func writeFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			return err // writing failed; the error names the file
		}
		return fmt.Errorf("read embedded archive (%s): %w", damaged, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(path, 0o755) // the umask may have narrowed it
}

// hint says what the user can do about an extraction error caused by the
// disk or permissions, or nothing.
func hint(err error, dataDir string) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Sprintf("; free space under --data-dir (%s) or set --data-dir to a larger disk", dataDir)
	case errors.Is(err, syscall.EROFS):
		return fmt.Sprintf("; --data-dir (%s) is read-only: set --data-dir to a writable directory", dataDir)
	case errors.Is(err, os.ErrPermission):
		return fmt.Sprintf("; run monokube as root or set --data-dir to a directory it can write (now %s)", dataDir)
	default:
		return ""
	}
}
