package kubelet

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/config"
	mklog "github.com/monokube/monokube/internal/log"
)

// TestMain registers the log format the rendered file names, as the roles
// do at start.
func TestMain(m *testing.M) {
	if err := mklog.RegisterComponentFormat(slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// testConfig is a node's kubelet config as node.KubeletConfig makes it,
// with paths under dir.
func testConfig(dir string, args ...config.Arg) Config {
	return Config{
		NodeName: "n1", NodeIP: netip.MustParseAddr("10.0.0.5"), RootDir: filepath.Join(dir, "kubelet"),
		Kubeconfig: filepath.Join(dir, "kubelet.kubeconfig"), ClientCAFile: filepath.Join(dir, "ca.crt"),
		TLSCertFile: filepath.Join(dir, "serving.crt"), TLSKeyFile: filepath.Join(dir, "serving.key"),
		RuntimeEndpoint: "/run/containerd.sock", ClusterDNS: netip.MustParseAddr("10.43.0.10"),
		ClusterDomain: "cluster.local", ResolvConf: "/etc/resolv.conf", CgroupDriver: "cgroupfs",
		CgroupV1: true, Args: args,
	}
}

// writeConfig renders c into dir and returns the kubelet's flags for it.
func writeConfig(t *testing.T, dir string, c Config) []string {
	t.Helper()
	data, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return Args(c, file)
}

func TestLoadFileThenFlags(t *testing.T) {
	dir := t.TempDir()
	args := writeConfig(t, dir, testConfig(dir, config.Arg{Key: "pod-max-pids", Value: "100"}))
	s, _, _, err := load(context.Background(), args)
	if err != nil {
		t.Fatal(err)
	}
	if s.ClusterDomain != "cluster.local" || s.ContainerRuntimeEndpoint != "unix:///run/containerd.sock" {
		t.Errorf("file values lost: domain %q, runtime %q", s.ClusterDomain, s.ContainerRuntimeEndpoint)
	}
	if s.PodPidsLimit != 100 {
		t.Errorf("--kubelet-arg pod-max-pids=100 over the file's %d: got %d", PodPidsLimit, s.PodPidsLimit)
	}
	if s.HostnameOverride != "n1" || s.NodeIP != "10.0.0.5" {
		t.Errorf("node flags: hostname %q, node IP %q", s.HostnameOverride, s.NodeIP)
	}
	if got := s.EvictionHard["nodefs.inodesFree"]; got != "5%" {
		t.Errorf("eviction threshold from the file: got %q", got)
	}
}

func TestLoadDropins(t *testing.T) {
	dir := t.TempDir()
	dropins := filepath.Join(dir, "kubelet.conf.d")
	if err := os.Mkdir(dropins, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dropins, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	head := "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
	write("10-pods.conf", head+"maxPods: 50\npodPidsLimit: 200\n")
	write("20-pods.conf", head+"maxPods: 60\n")
	write("30-ignored.yaml", head+"maxPods: 70\n")
	args := writeConfig(t, dir, testConfig(dir,
		config.Arg{Key: "config-dir", Value: dropins}, config.Arg{Key: "pod-max-pids", Value: "300"}))
	s, _, skipped, err := load(context.Background(), args)
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxPods != 60 {
		t.Errorf("maxPods: the last .conf (60) should win, got %d", s.MaxPods)
	}
	if s.PodPidsLimit != 300 {
		t.Errorf("a flag wins over drop-ins: podPidsLimit %d, want 300", s.PodPidsLimit)
	}
	if s.ClusterDomain != "cluster.local" {
		t.Errorf("the file's clusterDomain lost under drop-ins: %q", s.ClusterDomain)
	}
	if len(skipped) != 1 || filepath.Base(skipped[0]) != "30-ignored.yaml" {
		t.Errorf("skipped %v, want the .yaml file", skipped)
	}

	write("40-wrong.conf", "apiVersion: v1\nkind: ConfigMap\n")
	_, _, _, err = load(context.Background(), args)
	if err == nil || !strings.Contains(err.Error(), "40-wrong.conf") {
		t.Errorf("a drop-in of another kind: err %v, want one naming the file", err)
	}
}

func TestLoadRefusals(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		arg  config.Arg
		want string
	}{
		"unknown flag":   {config.Arg{Key: "no-such-flag", Value: "1"}, "--kubelet-arg"},
		"invalid value":  {config.Arg{Key: "pod-max-pids", Value: "many"}, "--kubelet-arg"},
		"invalid config": {config.Arg{Key: "max-pods", Value: "-1"}, "maxPods"},
	} {
		t.Run(name, func(t *testing.T) {
			args := writeConfig(t, dir, testConfig(dir, tc.arg))
			_, _, _, err := load(context.Background(), args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
	_, _, _, err := load(context.Background(), []string{"--config=" + filepath.Join(dir, "missing.yaml")})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("a missing config file: err %v, want one naming it", err)
	}
}
