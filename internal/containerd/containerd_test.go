package containerd

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// containerd's JSON log lines become records with its level, message and
// fields; anything else is passed through as the message.
func TestLogLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	out := logLine(log)
	out([]byte(`{"level":"warning","msg":"disk slow","time":"2026-01-01T00:00:00Z","snapshotter":"overlayfs"}`))
	out([]byte(`plain text from a panic`))
	got := buf.String()
	for _, want := range []string{`level=WARN msg="disk slow" snapshotter=overlayfs`, `level=INFO msg="plain text from a panic"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "2026-01-01") {
		t.Errorf("containerd's own timestamp leaked into the record:\n%s", got)
	}
}

func TestIsTarball(t *testing.T) {
	for name, want := range map[string]bool{
		"a.tar": true, "a.tar.gz": true, "a.tgz": true, "a.tar.zst": true,
		"README.md": false, "a.tar.partial": false, ".imported": false,
	} {
		if isTarball(name) != want {
			t.Errorf("isTarball(%q) = %v", name, !want)
		}
	}
}

// The rendered config names every path it is given and the runtime
// adaptations.
func TestRenderUsesConfig(t *testing.T) {
	out, err := Render(Config{Root: "/r", State: "/s", Address: "/s/c.sock", RuncBinary: "/b/runc", RuncRoot: "/s/runc",
		CNIBinDir: "/b", CNIConfDir: "/c", OptDir: "/o", SandboxImage: "x/pause:1", Snapshotter: "native",
		RestrictOOMScoreAdj: true, SystemdCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`root = "/r"`, `address = "/s/c.sock"`, `sandbox = "x/pause:1"`, `restrict_oom_score_adj = true`,
		`SystemdCgroup = true`, `snapshotter = "native"`, `BinaryName = "/b/runc"`, `Root = "/s/runc"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("config lacks %s:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("config_path")) {
		t.Errorf("config without RegistryHosts names a config_path:\n%s", out)
	}
	out, err = Render(Config{RegistryHosts: "/d/certs.d"})
	if err != nil || !bytes.Contains(out, []byte("[plugins.\"io.containerd.cri.v1.images\".registry]\n      config_path = \"/d/certs.d\"\n")) {
		t.Errorf("config with RegistryHosts: %v\n%s", err, out)
	}
}

// `monokube images import` unpacks for the snapshotter of the config the
// node runs with.
func TestCRISnapshotter(t *testing.T) {
	for _, want := range []string{"overlayfs", "native"} {
		data, err := Render(Config{Root: "/r", State: "/s", Address: "/a.sock", Snapshotter: want, SandboxImage: "p:1", RegistryHosts: "/h"})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "containerd.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := criSnapshotter(path); got != want || err != nil {
			t.Errorf("criSnapshotter = %q, %v; want %q", got, err, want)
		}
	}
}
