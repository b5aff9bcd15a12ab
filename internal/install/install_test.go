package install

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/killall"
	"github.com/monokube/monokube/internal/systemd"
)

func TestInstallUnderRoot(t *testing.T) {
	root, src, log := t.TempDir(), fakeBinary(t), slog.New(slog.NewTextHandler(io.Discard, nil))
	paths := Paths{Root: root, BinDir: "/usr/local/bin", Config: "/etc/mk/agent.yaml"}
	if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/local/bin/kubectl"), []byte("a real kubectl"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := Options{Paths: paths, Role: systemd.Agent, Source: src, Config: []byte("server: https://s:6443\n")}
	if err := Install(o, log); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/monokube-agent.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/local/bin/monokube agent --config /etc/mk/agent.yaml\n") {
		t.Errorf("unit: %v\n%s", err, unit)
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/mk/agent.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/local/bin/monokube")); string(b) != "binary" {
		t.Errorf("binary: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/local/bin/kubectl")); string(b) != "a real kubectl" {
		t.Error("an existing kubectl was replaced")
	}
	if l, err := os.Readlink(filepath.Join(root, "usr/local/bin/crictl")); err != nil || l != "monokube" {
		t.Errorf("crictl link: %q %v", l, err)
	}
	// Installing again (an upgrade of the files) works; the other role is refused.
	if err := Install(o, log); err != nil {
		t.Errorf("second install: %v", err)
	}
	o.Role = systemd.Server
	if err := Install(o, log); err == nil || !strings.Contains(err.Error(), "uninstall first") {
		t.Errorf("server over an agent: %v", err)
	}
	// The links install made go; the user's own kubectl stays.
	if err := removeLinks(filepath.Join(root, "usr/local/bin")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/local/bin/crictl")); err == nil {
		t.Error("crictl link stayed")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/kubectl")); err != nil {
		t.Error("the user's kubectl was removed")
	}
}

func TestUninstallUnderRootTouchesOnlyTheStagedFiles(t *testing.T) {
	root, src, log := t.TempDir(), fakeBinary(t), slog.New(slog.NewTextHandler(io.Discard, nil))
	paths := Paths{Root: root, BinDir: "/usr/local/bin", Config: "/etc/monokube/config.yaml"}
	if err := Install(Options{Paths: paths, Role: systemd.Server, Source: src, Config: []byte("{}\n")}, log); err != nil {
		t.Fatal(err)
	}
	// A node target that killall would refuse: it must not be reached.
	r := Removal{Paths: paths, Node: killall.Target{DataDir: "/", RunDir: "/"}, Kubeconfig: "/etc/monokube/kubeconfig.yaml"}
	r.Leave = func(context.Context) error { t.Error("a staged uninstall contacted the cluster"); return nil }
	if err := Uninstall(context.Background(), r, log); err != nil {
		t.Fatal(err)
	}
	var left []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("left under the root: %v", left)
	}
}

// fakeBinary is a file standing in for the monokube binary install copies.
func fakeBinary(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "monokube")
	if err := os.WriteFile(src, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	return src
}
