package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data dir others could write is refused, one that is only readable is
// made 0700, and a marked one is the only kind killall accepts.
func TestEnsureServerSecuresAndMarks(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	l := Layout{Data: open, Run: filepath.Join(base, "run")}
	if err := l.EnsureServer(); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("EnsureServer on a 0777 data dir = %v, want a refusal", err)
	}
	if l.Owned() == nil {
		t.Error("killall would act on an unmarked dir")
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureServer(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(open)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if err := l.Owned(); err != nil {
		t.Errorf("a marked data dir refused: %v", err)
	}
}

// Above the data dir, a world-writable dir is fine only with the sticky
// bit; an unmarked dir with a data/ entry (what the old check accepted) is
// refused, and one an older monokube left is accepted.
func TestOwnedAndTrusted(t *testing.T) {
	base := t.TempDir()
	loose := filepath.Join(base, "loose")
	if err := os.Mkdir(loose, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o777); err != nil {
		t.Fatal(err)
	}
	below := filepath.Join(loose, "mk")
	if err := os.Mkdir(below, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckTrusted(below); err == nil || !strings.Contains(err.Error(), loose+" is writable") {
		t.Errorf("under a 0777 non-sticky dir: %v, want a refusal naming %s", err, loose)
	}
	if err := os.Chmod(loose, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := CheckTrusted(below); err != nil {
		t.Errorf("under a sticky dir (as /tmp): %v", err)
	}

	srv := Layout{Data: filepath.Join(base, "srv")}
	if err := os.MkdirAll(srv.Versions(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := srv.Owned(); err != nil {
		t.Errorf("a dir holding only data/ (a node that never started) = %v", err)
	}
	if err := os.MkdirAll(filepath.Join(srv.Versions(), "0123456789abcdef", "bin"), 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, err := srv.LockVersions()
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := srv.Owned(); err != nil {
		t.Errorf("a dir holding only unpacked versions and their lock = %v", err)
	}
	if err := os.WriteFile(filepath.Join(srv.Versions(), "keep.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Owned(); err == nil || !strings.Contains(err.Error(), "not a monokube data dir") {
		t.Errorf("a dir whose data/ holds a file of someone else = %v, want a refusal", err)
	}
	if err := os.WriteFile(srv.VersionFile(), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(srv.Agent(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := srv.Owned(); err != nil {
		t.Errorf("an older monokube's data dir refused: %v", err)
	}
}
