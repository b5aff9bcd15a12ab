package sysreq

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot builds a machine's kernel interfaces under a temp dir.
func fakeRoot(t *testing.T, files map[string]string, dirs ...string) Files {
	root := t.TempDir()
	for path, content := range files {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Files{Root: root}
}

const status = "Name:\tmonokube\nCapEff:\t%s\n"

func TestProbeRestrictedV1Host(t *testing.T) {
	f := fakeRoot(t, map[string]string{
		"/proc/self/status": strings.Replace(status, "%s", "000001fffeffffff", 1), // bit 24 clear
		"/proc/filesystems": "nodev\tsysfs\nnodev\ttmpfs\n",
		"/proc/swaps":       "Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n",
	}, "/sys/fs/cgroup/memory")
	n, err := ProbeNode(f)
	if err != nil {
		t.Fatal(err)
	}
	want := Node{SwapOn: true}
	if n != want {
		t.Errorf("ProbeNode = %+v, want %+v", n, want)
	}
	if n.CgroupDriver() != "cgroupfs" {
		t.Errorf("driver = %s, want cgroupfs", n.CgroupDriver())
	}
	if got := len(n.Adaptations()); got != 6 {
		t.Errorf("%d adaptations, want one per missing feature (6): %q", got, n.Adaptations())
	}
}

func TestProbeModernHost(t *testing.T) {
	f := fakeRoot(t, map[string]string{
		"/proc/self/status":                            strings.Replace(status, "%s", "000001ffffffffff", 1),
		"/proc/filesystems":                            "nodev\toverlay\n",
		"/proc/swaps":                                  "Filename Type Size Used Priority\n",
		"/sys/fs/cgroup/cgroup.controllers":            "cpu memory pids\n",
		"/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
	}, "/run/systemd/system")
	n, err := ProbeNode(f)
	if err != nil {
		t.Fatal(err)
	}
	if !n.CgroupV2 || !n.Systemd || !n.CapSysResource || !n.Overlay || !n.BrNetfilter || n.SwapOn {
		t.Errorf("ProbeNode = %+v, want every feature present", n)
	}
	if n.CgroupDriver() != "systemd" {
		t.Errorf("driver = %s, want systemd", n.CgroupDriver())
	}
}

func TestProbeNoCgroupsFails(t *testing.T) {
	f := fakeRoot(t, map[string]string{"/proc/self/status": strings.Replace(status, "%s", "0", 1)})
	_, err := ProbeNode(f)
	if err == nil || !strings.Contains(err.Error(), "no cgroups") {
		t.Fatalf("ProbeNode = %v, want a 'no cgroups' error", err)
	}
}
