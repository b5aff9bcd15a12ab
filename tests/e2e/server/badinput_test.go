//go:build e2e

package server_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/tests/harness"
)

// Every bad input must exit non-zero with a message that names the problem,
// before anything is written to the data dir or the kubeconfig path.
func TestBadInputRefused(t *testing.T) {
	harness.RequireRoot(t)
	network := harness.NewNetwork(t)
	cases := []struct {
		name  string
		args  func(t *testing.T, n *harness.Node) []string
		opts  func(n *harness.Node) harness.Options
		setup func(t *testing.T, n *harness.Node)
		node  bool // run with the node (no --disable-agent)
		want  []string
	}{
		{name: "malformed yaml", args: configFile("data-dir: /x\ncluster-cidr: [oops\n"), want: []string{"config.yaml", "line"}},
		{name: "unknown config key", args: configFile("cluster-cidr: 10.42.0.0/16\nnot-a-flag: true\n"),
			want: []string{"config.yaml", "line 2", `unknown key "not-a-flag"`}},
		{name: "missing explicit config", args: fixed("--config", "/nonexistent/monokube.yaml"), want: []string{"/nonexistent/monokube.yaml"}},
		{name: "invalid cidr", args: fixed("--cluster-cidr", "10.42.0.0/99"), want: []string{"--cluster-cidr", "not a CIDR"}},
		{name: "invalid ip", args: fixed("--node-ip", "300.1.2.3"), want: []string{"--node-ip", "not an IP address"}},
		{name: "overlapping cidrs", args: fixed("--service-cidr", "10.42.128.0/20"), want: []string{"overlaps"}},
		{name: "node IP inside the cluster CIDR", args: func(_ *testing.T, n *harness.Node) []string {
			return []string{"--cluster-cidr", netip.MustParsePrefix(n.NS.IP + "/16").Masked().String()}
		}, want: []string{"is inside the cluster-cidr"}},
		{name: "data dir others can write", setup: func(t *testing.T, n *harness.Node) {
			if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(n.DataDir, 0o777); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"writable by group or others", "chmod 0700"}},
		{name: "port in use", setup: occupy(6443), want: []string{"port 6443", "in use"}},
		{name: "etcd port in use", setup: occupy(2379), want: []string{"port 2379", "etcd"}},
		{name: "data dir under a file", args: func(t *testing.T, n *harness.Node) []string {
			f := filepath.Join(n.Dir, "file")
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"--data-dir", filepath.Join(f, "data")}
		}, want: []string{"--data-dir", "not a directory"}},
		{name: "read-only data dir", opts: func(n *harness.Node) harness.Options {
			return harness.Options{Setup: []string{"mkdir -p " + n.DataDir, "mount -t tmpfs -o ro tmpfs " + n.DataDir}}
		}, want: []string{"--data-dir", "cannot be written"}},
		{name: "not root", opts: func(*harness.Node) harness.Options {
			return harness.Options{User: "65534:65534", Env: []string{"XDG_CACHE_HOME=" + nobodyCache(t)}}
		}, want: []string{"must run as root"}},
		{name: "kubelet port in use", node: true, setup: occupy(10250), want: []string{"port 10250", "kubelet"}},
		{name: "no iptables for the node", node: true, opts: func(*harness.Node) harness.Options {
			return harness.Options{Setup: []string{"export PATH=/usr/local/bin:/usr/bin:/bin"}}
		}, want: []string{"iptables", "install the iptables package"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := harness.NewNode(t, network, 10+i)
			if tc.setup != nil {
				tc.setup(t, n)
			}
			args := []string{"server", "--data-dir", n.DataDir, "--run-dir", n.RunDir,
				"--write-kubeconfig", n.Kubeconfig, "--node-ip", n.NS.IP}
			if !tc.node {
				args = append(args, "--disable-agent")
			}
			if tc.args != nil {
				args = append(args, tc.args(t, n)...)
			}
			var opts harness.Options
			if tc.opts != nil {
				opts = tc.opts(n)
			}
			r := n.Exec(30*time.Second, opts, args...)
			if r.Code == 0 {
				t.Fatalf("exit 0, want failure; stderr:\n%s", r.Stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
				}
			}
			if strings.Count(r.Stderr, "Error:") != 1 {
				t.Errorf("want the error printed exactly once:\n%s", r.Stderr)
			}
			assertUntouched(t, n)
		})
	}
}

// nobodyCache is a cache dir user 65534 can write, where the launcher
// unpacks the real binary for an unprivileged user.
func nobodyCache(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "monokube-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fixed returns the same extra args for every node.
func fixed(args ...string) func(*testing.T, *harness.Node) []string {
	return func(*testing.T, *harness.Node) []string { return args }
}

// configFile writes content as the node's config file and points --config at it.
func configFile(content string) func(*testing.T, *harness.Node) []string {
	return func(t *testing.T, n *harness.Node) []string {
		p := filepath.Join(n.Dir, "config.yaml")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{"--config", p}
	}
}

// occupy listens on port inside the node's namespace for the whole test.
func occupy(port int) func(*testing.T, *harness.Node) {
	return func(t *testing.T, n *harness.Node) {
		l, err := n.NS.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
}

func assertUntouched(t *testing.T, n *harness.Node) {
	t.Helper()
	for _, p := range []string{filepath.Join(n.DataDir, "server"), n.Kubeconfig, n.RunDir} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created although the input was refused", p)
		}
	}
}
