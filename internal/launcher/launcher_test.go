package launcher

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func payload(t *testing.T, content string) Payload {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithSingleSegment(true)) // a frame that records its size, as zstd(1) writes
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	return Payload{Zstd: enc.EncodeAll([]byte(content), nil), SHA256: hex.EncodeToString(sum[:])}
}

func TestEnsureExtractsOncePerVersion(t *testing.T) {
	dir := t.TempDir()
	p := payload(t, "#!/bin/sh\necho v1\n")
	path, err := Ensure(p, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data", p.SHA256[:16], "monokube"); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("extracted binary: %v, mode %v", err, fi.Mode())
	}
	// An existing binary of the right size is used as it is, not
	// extracted again (the digest is checked at extraction only).
	kept := strings.Repeat("k", int(fi.Size()))
	if err := os.WriteFile(path, []byte(kept), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(p, dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != kept {
		t.Errorf("binary extracted again: %q", got)
	}
	// One of another size is damaged: unpacked again.
	if err := os.WriteFile(path, []byte("short"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(p, dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "#!/bin/sh\necho v1\n" {
		t.Errorf("a binary of the wrong size was kept: %q", got)
	}
	// One that others may write is refused, never run.
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(p, dir); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("Ensure with a 0777 binary = %v, want a refusal", err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	// Another version goes beside it.
	p2 := payload(t, "#!/bin/sh\necho v2\n")
	path2, err := Ensure(p2, dir)
	if err != nil || path2 == path {
		t.Fatalf("second version at %s (%v), first at %s", path2, err, path)
	}
}

func TestEnsureRejectsDamagedPayload(t *testing.T) {
	dir := t.TempDir()
	p := payload(t, "binary")
	p.SHA256 = strings.Repeat("0", 64)
	_, err := Ensure(p, dir)
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("err = %v, want a damaged-payload error", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "data", "*", "*"))
	left2, _ := filepath.Glob(filepath.Join(dir, "data", "*", ".*"))
	if len(left)+len(left2) != 0 {
		t.Errorf("files left after a failed extraction: %v %v", left, left2)
	}
}

func TestFlagValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"monokube", "server", "--data-dir", "/d"}, "/d", true},
		{[]string{"monokube", "server", "--data-dir=/d"}, "/d", true},
		{[]string{"monokube", "server", "-data-dir=/d"}, "/d", true},
		{[]string{"monokube", "server", "--data-dir"}, "", false},
		{[]string{"monokube", "server", "---data-dir=/d"}, "", false},
		{[]string{"monokube", "kubectl", "--", "--data-dir=/d"}, "", false},
		{[]string{"monokube", "server", "--data-directory=/d"}, "", false},
		{[]string{"--data-dir=/argv0-is-not-a-flag"}, "", false},
	} {
		got, ok := flagValue(tc.args, "data-dir")
		if got != tc.want || ok != tc.ok {
			t.Errorf("flagValue(%q) = %q, %v; want %q, %v", tc.args, got, ok, tc.want, tc.ok)
		}
	}
}
