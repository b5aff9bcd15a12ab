// Package testutil holds helpers shared by tests: golden files and a fixed
// server configuration. It must only be imported from _test.go files and
// tests/.
package testutil

import (
	"bytes"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/monokube/monokube/internal/config"
)

// update rewrites golden files instead of comparing: go test ./... -update.
var update = flag.Bool("update", false, "rewrite golden files") //nolint:gochecknoglobals // test flag

// Golden compares got with testdata/<name>.golden, or rewrites that file
// when -update is set.
func Golden(t *testing.T, name string, got []byte) {
	t.Helper()
	GoldenFile(t, filepath.Join("testdata", name+".golden"), got)
}

// GoldenFile compares got with the file at path, or rewrites it when
// -update is set: for files checked in outside testdata/.
func GoldenFile(t *testing.T, path string, got []byte) {
	t.Helper()
	name := filepath.Base(path)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// FakeHost is a config.Host with fixed answers.
type FakeHost struct {
	Name string
	IP   netip.Addr
	Err  error
}

// Hostname implements config.Host.
func (h FakeHost) Hostname() (string, error) { return h.Name, h.Err }

// DefaultIP implements config.Host.
func (h FakeHost) DefaultIP() (netip.Addr, error) { return h.IP, h.Err }

// ServerConfig is the default server configuration on a host named "node1"
// at 192.168.1.10 with data under dataDir, after applying mutate to the input.
func ServerConfig(t *testing.T, dataDir string, mutate func(*config.ServerInput)) *config.Server {
	t.Helper()
	in := config.DefaultServerInput()
	in.DataDir = dataDir
	in.RunDir = filepath.Join(dataDir, "run")
	in.WriteKubeconfig = filepath.Join(dataDir, "kubeconfig.yaml")
	if mutate != nil {
		mutate(&in)
	}
	cfg, err := config.BuildServer(in, FakeHost{Name: "Node1", IP: netip.MustParseAddr("192.168.1.10")})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// FreePort is a loopback port nothing listened on a moment ago.
func FreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
