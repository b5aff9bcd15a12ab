package sysreq

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
			err := Checks{Euid: func() int { return tc.euid }}.Root("server")
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

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestPorts(t *testing.T) {
	loopback := netip.MustParseAddr("127.0.0.1")
	taken, free := listen(t), freePort(t)
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
			[]string{"port " + strconv.Itoa(taken), "--https-listen-port", "already in use"},
		},
		{
			"not an address of this machine",
			[]Port{{notHere, free, "kube-apiserver"}},
			[]string{"192.0.2.1", "kube-apiserver", "not an address of this machine"},
		},
		{
			"all problems reported",
			[]Port{{loopback, free, "ok"}, {loopback, taken, "etcd client"}, {notHere, free, "etcd peer"}},
			[]string{"port " + strconv.Itoa(taken) + " (etcd client)", "for etcd peer"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := OS().Ports(tc.ports)
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
	if err := OS().Ports([]Port{{loopback, free, "again"}}); err != nil {
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
			err := Writable(tc.path, "data-dir")
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
