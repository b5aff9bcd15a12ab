package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/monokube/monokube/internal/sysreq"
)

// modernHost is a machine that meets every requirement, under a temp dir.
func modernHost(t *testing.T, swap bool) sysreq.Files {
	t.Helper()
	root := t.TempDir()
	swaps := "Filename Type Size Used Priority\n"
	if swap {
		swaps += "/swapfile file 1024 0 -2\n"
	}
	files := map[string]string{
		"/proc/self/status":                            "CapEff:\t000001ffffffffff\n",
		"/proc/filesystems":                            "nodev\toverlay\n",
		"/proc/swaps":                                  swaps,
		"/sys/fs/cgroup/cgroup.controllers":            "cpu memory pids\n",
		"/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
		"/proc/sys/net/ipv4/ip_forward":                "1\n",
		"/sys/module/vxlan/refcnt":                     "0\n",
		"/sys/module/nf_conntrack/refcnt":              "0\n",
		"/run/systemd/system/.keep":                    "",
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(root+path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/proc/self/ns/net", "/proc/1/ns/net"} {
		if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("net:[4026531840]", root+p); err != nil {
			t.Fatal(err)
		}
	}
	return sysreq.Files{Root: root}
}

type fakeListener struct{ net.Listener }

func (fakeListener) Close() error { return nil }

// fakeChecks probe files; every port is free except busy.
func fakeChecks(files sysreq.Files, busy string) sysreq.Checks {
	return sysreq.Checks{
		Euid: func() int { return 0 },
		Listen: func(_, addr string) (net.Listener, error) {
			if busy != "" && strings.HasSuffix(addr, ":"+busy) {
				return nil, unix.EADDRINUSE
			}
			return fakeListener{}, nil
		},
		LookPath: func(file string) (string, error) { return "/usr/sbin/" + file, nil },
		Output:   func(string, ...string) ([]byte, error) { return []byte("iptables v1.8.9 (nf_tables)\n"), nil },
		Statfs: func(_ string, st *unix.Statfs_t) error {
			st.Bsize, st.Bavail = 4096, 50<<30/4096
			return nil
		},
		Files: files,
	}
}

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		swap    bool
		busy    string
		args    []string
		want    []string // lines or parts of lines in the output
		without []string
		summary string
		wantErr bool
	}{
		{
			name: "all ok",
			want: []string{"ok    root: running as root", "ok    cgroups: v2 (unified hierarchy), systemd driver",
				"ok    iptables: v1.8.9, nf_tables backend", "ok    port 6443 (--https-listen-port): free on 0.0.0.0",
				"ok    port 10250 (kubelet port): free on 10.0.0.5", "ok    port 2399 (etcd balancer port): free on 127.0.0.1", "ok    port 6444 (apiserver load balancer port): free on 127.0.0.1",
				"ok    disk space: 50.0 GiB free for --data-dir"},
			summary: "27 ok, 0 warn, 0 fail",
		},
		{
			name:    "a warning exits 0",
			swap:    true,
			want:    []string{"warn  swap: on: the kubelet runs with it", "— fix: nothing to do"},
			summary: "26 ok, 1 warn, 0 fail",
		},
		{
			name:    "a port in use fails",
			busy:    "2379",
			want:    []string{"fail  port 2379 (etcd client port): already in use on 127.0.0.1 — fix: stop whatever listens there", "monokube itself already running"},
			summary: "26 ok, 0 warn, 1 fail",
			wantErr: true,
		},
		{
			name:    "no node with --disable-agent",
			args:    []string{"--disable-agent"},
			without: []string{"cgroups", "kubelet port", "iptables"},
			summary: "10 ok, 0 warn, 0 fail",
		},
		{
			name:    "an agent has no control-plane ports",
			args:    []string{"--agent"},
			busy:    "6443",
			want:    []string{"ok    port 10250 (kubelet port)", "ok    port 6444 (apiserver load balancer port)", "ok    iptables"},
			without: []string{"port 6443", "port 2379", "port 2399", "--write-kubeconfig"},
			summary: "20 ok, 0 warn, 0 fail",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(conf, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			dataDir := filepath.Join(dir, "data")
			var out bytes.Buffer
			app := &cli.App{Commands: []*cli.Command{newCheckConfigCommand(&out, fakeChecks(modernHost(t, tc.swap), tc.busy))}}
			args := append([]string{"monokube", "check-config", "--config", conf, "--data-dir", dataDir,
				"--node-ip", "10.0.0.5", "--write-kubeconfig", filepath.Join(dir, "kube", "config")}, tc.args...)
			err := app.Run(args)
			if (err != nil) != tc.wantErr {
				t.Errorf("check-config = %v, want error: %v", err, tc.wantErr)
			}
			got := out.String()
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if last := lines[len(lines)-1]; last != tc.summary {
				t.Errorf("summary %q, want %q", last, tc.summary)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.without {
				if strings.Contains(got, w) {
					t.Errorf("output has %q:\n%s", w, got)
				}
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("check-config created the data dir (stat: %v)", err)
			}
		})
	}
}

// On the real machine check-config only probes: whatever it finds, it
// prints a verdict per requirement and writes nothing.
func TestCheckConfigOnThisMachine(t *testing.T) {
	dir := t.TempDir()
	dataDir, conf := filepath.Join(dir, "data"), filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	app := &cli.App{Commands: []*cli.Command{checkConfigCommand(&out)}}
	// 192.0.2.10 (TEST-NET-1) is no address of this machine: the node's
	// ports fail rather than bind anything reachable.
	err := app.Run([]string{"monokube", "check-config", "--config", conf,
		"--data-dir", dataDir, "--node-ip", "192.0.2.10", "--bind-address", "127.0.0.1",
		"--write-kubeconfig", filepath.Join(dir, "kube", "config")})
	if err != nil && !strings.Contains(err.Error(), "requirements failed") {
		t.Fatalf("check-config = %v, want at most failed requirements", err)
	}
	if !strings.Contains(out.String(), " ok, ") || !strings.Contains(out.String(), "disk space:") {
		t.Errorf("no report:\n%s", out.String())
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("check-config created the data dir (stat: %v)", err)
	}
}
