package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "f.conf")
	if err := WriteFile(path, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "two" || fi.Mode().Perm() != 0o600 {
		t.Errorf("content %q mode %v, want \"two\" 0600", got, fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".f.conf.*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestWriteFileUnderAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(file, "x"), []byte("x"), 0o600); err == nil {
		t.Error("writing under a regular file succeeded")
	}
}

func TestState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	want := map[string]string{"a.tar": "12@34"}
	if err := SaveState(path, want); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	LoadState(path, &got)
	if got["a.tar"] != "12@34" || len(got) != 1 {
		t.Errorf("LoadState = %v, want %v", got, want)
	}
	if err := os.WriteFile(path, []byte("{damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{"x": "y"}
	LoadState(path, &kept)
	LoadState(filepath.Join(t.TempDir(), "missing.json"), &kept)
	if kept["x"] != "y" {
		t.Errorf("a damaged or missing state file changed the value: %v", kept)
	}
}

// A kill -9 between CreateTemp and Rename leaves ".<name>.<digits>"; only
// those go, never a file that merely starts with a dot.
func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"server-ca.key", ".monokube", ".hidden.conf", ".x.12a", "a.123"}
	stale := []string{".server-ca.key.3141592653", ".token.42"}
	for _, n := range append(append([]string{}, keep...), stale...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".d.77"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStaleTemps(dir, filepath.Join(dir, "missing")); err != nil {
		t.Fatal(err)
	}
	for _, n := range append(keep, ".d.77") {
		if !Exists(filepath.Join(dir, n)) {
			t.Errorf("%s removed", n)
		}
	}
	for _, n := range stale {
		if Exists(filepath.Join(dir, n)) {
			t.Errorf("stale %s kept", n)
		}
	}
}

// RemoveTree keeps what only rejects and then the dir; a full removal
// takes the dir too.
func TestRemoveTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	for _, n := range []string{"mine/x", "theirs"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	left, err := RemoveTree(dir, func(n string) bool { return n == "mine" })
	if err != nil || len(left) != 1 || left[0] != "theirs" || Exists(filepath.Join(dir, "mine")) {
		t.Fatalf("RemoveTree(only mine) = %v, %v", left, err)
	}
	if left, err := RemoveTree(dir, nil); err != nil || left != nil || Exists(dir) {
		t.Fatalf("RemoveTree(all) = %v, %v; dir exists: %v", left, err, Exists(dir))
	}
	if _, err := RemoveTree(dir, nil); err != nil {
		t.Errorf("a missing dir: %v", err)
	}
}

// WriteFiles renames nothing unless every file was written: a failure on
// the second leaves the first as it was, and no temp file behind.
func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "x.key"), filepath.Join(dir, "x.crt")
	if err := WriteFiles(File{key, []byte("k1"), 0o600}, File{cert, []byte("c1"), 0o644}); err != nil {
		t.Fatal(err)
	}
	blocked := filepath.Join(dir, "file")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFiles(File{key, []byte("k2"), 0o600}, File{filepath.Join(blocked, "x.crt"), []byte("c2"), 0o644})
	if err == nil {
		t.Fatal("a file under a regular file was written")
	}
	for path, want := range map[string]string{key: "k1", cert: "c1"} {
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Errorf("%s = %q after a failed WriteFiles, want %q", path, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if IsTempName(e.Name()) {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode().Perm())
	}
}
