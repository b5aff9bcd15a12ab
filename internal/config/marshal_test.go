package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMarshalWritesOnlyChangedKeys(t *testing.T) {
	in := DefaultAgentInput()
	in.Server = "https://10.0.0.1:6443"
	in.KubeletArg = []string{"cgroup-root=/x", "max-pods=50"}
	in.Debug = true
	got, err := Marshal(in, DefaultAgentInput())
	if err != nil {
		t.Fatal(err)
	}
	want := "server: https://10.0.0.1:6443\nkubelet-arg:\n    - cgroup-root=/x\n    - max-pods=50\ndebug: true\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// What Marshal writes reads back as the same settings.
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, got, 0o600); err != nil {
		t.Fatal(err)
	}
	back := DefaultAgentInput()
	if err := LoadFile(path, true, &back); err != nil {
		t.Fatal(err)
	}
	if back.Server != in.Server || len(back.KubeletArg) != 2 || !back.Debug || back.DataDir != DefaultDataDir {
		t.Errorf("read back %+v", back)
	}
	if got, _ := Marshal(DefaultServerInput(), DefaultServerInput()); len(got) == 0 || got[0] != '#' {
		t.Errorf("all defaults: %q", got)
	}
}

func TestLoadNodeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	data := "server: https://x:6443\ntoken: t\ndata-dir: /d\nkubelet-arg: [max-pods=5, cgroup-root=/mk]\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	nf, err := LoadNodeFiles(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if nf.DataDir != "/d" || nf.RunDir != DefaultRunDir || nf.CgroupRoot() != "/mk" {
		t.Errorf("got %+v, cgroup root %q", nf, nf.CgroupRoot())
	}
	if nf, err := LoadNodeFiles(filepath.Join(t.TempDir(), "missing"), false); err != nil || nf.CgroupRoot() != "/" {
		t.Errorf("missing file: %+v %v", nf, err)
	}
	if _, err := LoadNodeFiles(filepath.Join(t.TempDir(), "missing"), true); err == nil {
		t.Error("a missing --config file was accepted")
	}
}
