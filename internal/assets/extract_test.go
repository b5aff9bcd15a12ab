package assets

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// entry is one tar entry of a test archive.
type entry struct {
	name string
	body string
	typ  byte // tar.TypeReg when zero
}

// zstdTar builds a zstd-compressed tar of entries.
func zstdTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typ, Size: int64(len(e.body))}
		switch e.typ {
		case 0:
			hdr.Typeflag = tar.TypeReg
		case tar.TypeSymlink:
			hdr.Linkname, hdr.Size = e.body, 0
		case tar.TypeDir:
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw, err := zstd.NewWriter(&zb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(tb.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return zb.Bytes()
}

func helpers(t *testing.T) []byte {
	return zstdTar(t, entry{name: "runc", body: "runc binary"}, entry{name: "bridge", body: "bridge binary"})
}

func TestExtractBin(t *testing.T) {
	dataDir := t.TempDir()
	archive := helpers(t)
	binDir, err := extractBin(dataDir, archive)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dataDir, "data"); filepath.Dir(filepath.Dir(binDir)) != want || filepath.Base(binDir) != "bin" {
		t.Errorf("bin dir %s, want %s/<hash>/bin", binDir, want)
	}
	if h := filepath.Base(filepath.Dir(binDir)); len(h) != 16 {
		t.Errorf("hash dir %q, want 16 hex digits", h)
	}
	for name, body := range map[string]string{"runc": "runc binary", "bridge": "bridge binary"} {
		p := filepath.Join(binDir, name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != body {
			t.Errorf("%s = %q, want %q", name, got, body)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v, want 0755", name, fi.Mode().Perm())
		}
	}
	assertNoTemp(t, filepath.Dir(binDir))
}

func TestExtractBinReusesCompleteDir(t *testing.T) {
	dataDir := t.TempDir()
	archive := helpers(t)
	first, err := extractBin(dataDir, archive)
	if err != nil {
		t.Fatal(err)
	}
	// A file the archive does not have survives only if nothing is extracted again.
	sentinel := filepath.Join(first, "sentinel")
	if err := os.WriteFile(sentinel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := extractBin(dataDir, archive)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("second call returned %s, want %s", second, first)
	}
	if _, err := os.Stat(sentinel); err != nil {
		t.Errorf("complete dir was extracted again: %v", err)
	}

	other, err := extractBin(dataDir, zstdTar(t, entry{name: "runc", body: "newer runc"}))
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Errorf("different content reused %s", first)
	}
}

// Concurrent extractions into one data dir (a `monokube crictl` while the
// node starts) all succeed: none removes another's temporary dir, and the
// dir is marked as just used for the sweeper.
func TestExtractBinConcurrent(t *testing.T) {
	dataDir := t.TempDir()
	archive := helpers(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			dir, err := extractBin(dataDir, archive)
			if err == nil && !complete(dir) {
				err = fmt.Errorf("%s returned incomplete", dir)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	dir, err := extractBin(dataDir, archive)
	if err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, filepath.Dir(dir))
	if fi, err := os.Stat(filepath.Dir(dir)); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("version dir not marked as just used: %v, %v", fi.ModTime(), err)
	}
}

func TestExtractBinReplacesIncompleteDir(t *testing.T) {
	dataDir := t.TempDir()
	archive := helpers(t)
	binDir, err := extractBin(dataDir, archive)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a half-written dir and a temp dir left by a crash.
	if err := os.RemoveAll(binDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(binDir, "runc"), []byte("trunc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(filepath.Dir(binDir), tmpPrefix+"crashed"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := extractBin(dataDir, archive); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(binDir, "runc"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "runc binary" {
		t.Errorf("runc = %q, want the archive's content", got)
	}
	assertNoTemp(t, filepath.Dir(binDir))
}

func TestExtractBinCorruptArchive(t *testing.T) {
	valid := helpers(t)
	tests := map[string][]byte{
		"not zstd":  []byte("this is not a zstd stream"),
		"truncated": valid[:len(valid)/2],
		"empty tar": zstdTar(t),
	}
	for name, archive := range tests {
		t.Run(name, func(t *testing.T) {
			dataDir := t.TempDir()
			_, err := extractBin(dataDir, archive)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), "extract helper binaries to "+dataDir) {
				t.Errorf("error %q does not say what it extracted where", err)
			}
			assertNothingLeft(t, dataDir)
		})
	}
}

func TestExtractBinRejectsUnsafeEntries(t *testing.T) {
	tests := map[string]entry{
		"absolute":       {name: "/etc/evil", body: "x"},
		"dot-dot":        {name: "../evil", body: "x"},
		"nested dot-dot": {name: "a/../../evil", body: "x"},
		"inner dot-dot":  {name: "a/../evil", body: "x"},
		"symlink":        {name: "link", body: "/etc/passwd", typ: tar.TypeSymlink},
	}
	for name, bad := range tests {
		t.Run(name, func(t *testing.T) {
			dataDir := t.TempDir()
			_, err := extractBin(dataDir, zstdTar(t, entry{name: "runc", body: "ok"}, bad))
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad.name)) {
				t.Errorf("error %q does not name the entry", err)
			}
			assertNothingLeft(t, dataDir)
			if _, err := os.Lstat(filepath.Join(dataDir, "evil")); err == nil {
				t.Error("entry written outside the target dir")
			}
		})
	}
}

func TestHint(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "write", Path: "/d/runc", Err: syscall.ENOSPC}, "free space under --data-dir (/d)"},
		{&os.PathError{Op: "mkdir", Path: "/d/data", Err: syscall.EROFS}, "read-only"},
		{&os.PathError{Op: "mkdir", Path: "/d/data", Err: syscall.EACCES}, "run monokube as root"},
		{fmt.Errorf("read: %w", syscall.EIO), ""},
	}
	for _, tt := range tests {
		got := hint(tt.err, "/d")
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("hint(%v) = %q, want it to contain %q", tt.err, got, tt.want)
		}
	}
}

// assertNoTemp fails if a temporary extraction dir is left in versionDir.
func assertNoTemp(t *testing.T, versionDir string) {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(versionDir, tmpPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("temporary dirs left behind: %v", left)
	}
}

// assertNothingLeft fails if a failed extraction left anything under
// <dataDir>/data.
func assertNothingLeft(t *testing.T, dataDir string) {
	t.Helper()
	var left []string
	err := filepath.WalkDir(filepath.Join(dataDir, "data"), func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// The versions lock stays: it is what serialises extractions.
		if rel, _ := filepath.Rel(dataDir, p); rel != "data" && rel != filepath.Join("data", ".lock") {
			left = append(left, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("failed extraction left %v", left)
	}
}

// extractBin calls ExtractBin with archive's digest, as the Makefile records it.
func extractBin(dataDir string, archive []byte) (string, error) {
	sum := sha256.Sum256(archive)
	return ExtractBin(dataDir, archive, hex.EncodeToString(sum[:]))
}
