package sysreq

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/monokube/monokube/internal/testutil"
)

func TestRoot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		euid    int
		wantErr bool
	}{
		{"root", 0, false},
		{"user", 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Checks{Euid: func() int { return tc.euid }}
			err := c.Root("server")
			if r := c.RunsAsRoot("server"); (r.Status == Fail) != tc.wantErr || r.Err() == nil != (err == nil) {
				t.Errorf("RunsAsRoot = %s, Root = %v; they disagree or are wrong", r.Line(), err)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("Root with euid %d = %v, want error: %v", tc.euid, err, tc.wantErr)
			}
			if err != nil {
				for _, want := range []string{"monokube server", "sudo"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
			}
		})
	}
}

// listen takes a free port on 127.0.0.1 for the test's duration.
func listen(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestPorts(t *testing.T) {
	loopback := netip.MustParseAddr("127.0.0.1")
	taken, free := listen(t), testutil.FreePort(t)
	notHere := netip.MustParseAddr("192.0.2.1") // TEST-NET-1
	for _, tc := range []struct {
		name  string
		ports []Port
		want  []string // parts of the error; none means success
	}{
		{"none", nil, nil},
		{"free", []Port{{loopback, free, "--https-listen-port"}}, nil},
		{
			"taken",
			[]Port{{loopback, taken, "--https-listen-port"}},
			[]string{"port " + strconv.Itoa(taken), "--https-listen-port", "already in use", "monokube itself already running"},
		},
		{
			"not an address of this machine",
			[]Port{{notHere, free, "kube-apiserver"}},
			[]string{"192.0.2.1", "kube-apiserver", "not an address of this machine"},
		},
		{
			"all problems reported",
			[]Port{{loopback, free, "ok"}, {loopback, taken, "etcd client"}, {notHere, free, "etcd peer"}},
			[]string{"port " + strconv.Itoa(taken) + " (etcd client)", "(etcd peer): cannot listen"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := OS().Ports(tc.ports)
			if len(r) != len(tc.ports) {
				t.Errorf("%d results for %d ports", len(r), len(tc.ports))
			}
			err := r.Err()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Ports = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Ports = nil, want an error with %q", tc.want)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
	// Ports must not keep anything bound.
	if err := OS().Ports([]Port{{loopback, free, "again"}}).Err(); err != nil {
		t.Errorf("port %d is no longer free after Ports: %v", free, err)
	}
}

func TestWritable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		want string // part of the error; empty means success
	}{
		{"existing dir", dir, ""},
		{"missing nested dir", filepath.Join(dir, "a", "b", "c"), ""},
		{"relative path", ".", ""},
		{"regular file", file, "not a directory"},
		{"under a regular file", filepath.Join(file, "sub"), "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Writable(tc.path, "data-dir").Err()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Writable(%s) = %v, want nil", tc.path, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Writable(%s) = nil, want an error", tc.path)
			}
			for _, want := range []string{tc.want, "--data-dir", tc.path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("Writable created %s (stat: %v)", filepath.Join(dir, "a"), err)
	}
}

func TestDiskFree(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		free uint64 // bytes
		err  error
		want Status
	}{
		{"plenty", 50 << 30, nil, OK},
		{"tight", 5 << 30, nil, Warn},
		{"full", 512 << 20, nil, Fail},
		{"cannot tell", 0, unix.ENOSYS, Warn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var statted string
			c := Checks{Statfs: func(path string, st *unix.Statfs_t) error {
				statted = path
				st.Bsize, st.Bavail = 4096, tc.free/4096
				return tc.err
			}}
			r := c.DiskFree(filepath.Join(dir, "not", "yet"), "data-dir")
			if r.Status != tc.want {
				t.Errorf("DiskFree = %s, want %s", r.Line(), tc.want)
			}
			if statted != dir {
				t.Errorf("statfs %q, want the nearest existing ancestor %q", statted, dir)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "not")); !os.IsNotExist(err) {
		t.Errorf("DiskFree created a directory (stat: %v)", err)
	}
}

func TestIptables(t *testing.T) {
	found := func(file string) (string, error) { return "/usr/sbin/" + file, nil }
	version := func(out string, err error) func(string, ...string) ([]byte, error) {
		return func(string, ...string) ([]byte, error) { return []byte(out), err }
	}
	for _, tc := range []struct {
		name     string
		lookPath func(string) (string, error)
		output   func(string, ...string) ([]byte, error)
		want     Status
		say      string
	}{
		{"nft", found, version("iptables v1.8.9 (nf_tables)\n", nil), OK, "v1.8.9, nf_tables backend"},
		{"legacy", found, version("iptables v1.8.7 (legacy)\n", nil), OK, "v1.8.7, legacy backend"},
		{"old", found, version("iptables v1.6.1\n", nil), OK, "v1.6.1, legacy backend"},
		{"broken", found, version("", errors.New("exit status 1")), Warn, "--version failed"},
		{"missing", func(file string) (string, error) {
			if file == "iptables-save" {
				return "", errors.New("not found")
			}
			return found(file)
		}, nil, Fail, "iptables-save not found on PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Checks{LookPath: tc.lookPath, Output: tc.output}.Iptables()
			if r.Status != tc.want || !strings.Contains(r.Detail, tc.say) {
				t.Errorf("Iptables = %s, want %s saying %q", r.Line(), tc.want, tc.say)
			}
		})
	}
}

func TestIPForward(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  Status
	}{
		{"on", map[string]string{"/proc/sys/net/ipv4/ip_forward": "1\n"}, OK},
		{"off but the node can turn it on", map[string]string{"/proc/sys/net/ipv4/ip_forward": "0\n"}, OK},
		{"unreadable", nil, Fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := ipForward(fakeRoot(t, tc.files)); r.Status != tc.want {
				t.Errorf("ipForward = %s, want %s", r.Line(), tc.want)
			}
		})
	}
}
