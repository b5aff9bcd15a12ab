package sysreq

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeRoot builds a machine's kernel interfaces under a temp dir: files
// with their content, and directories.
func fakeRoot(t *testing.T, files map[string]string, dirs ...string) Files {
	t.Helper()
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

// hostNetns makes /proc/self/ns/net and /proc/1/ns/net name one namespace.
func hostNetns(t *testing.T, f Files) {
	t.Helper()
	for _, p := range []string{"/proc/self/ns/net", "/proc/1/ns/net"} {
		if err := os.MkdirAll(filepath.Dir(f.Root+p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("net:[4026531840]", f.Root+p); err != nil {
			t.Fatal(err)
		}
	}
}

const status = "Name:\tmonokube\nCapEff:\t%s\n"

func caps(hex string) string { return strings.Replace(status, "%s", hex, 1) }

// statuses maps each result's name to its status.
func statuses(r Report) map[string]Status {
	m := map[string]Status{}
	for _, res := range r {
		m[res.Name] = res.Status
	}
	return m
}

func checkStatuses(t *testing.T, r Report, want map[string]Status) {
	t.Helper()
	got := statuses(r)
	for name, s := range want {
		if got[name] != s {
			t.Errorf("%s: %s, want %s\n%s", name, got[name], s, r)
		}
	}
}

var v1Controllers = []string{ //nolint:gochecknoglobals // test fixture
	"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpuset",
	"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/devices"}

func TestNodeRestrictedV1Host(t *testing.T) {
	f := fakeRoot(t, map[string]string{
		"/proc/self/status":             caps("000001fffeffffff"), // bit 24 clear
		"/proc/filesystems":             "nodev\tsysfs\nnodev\ttmpfs\n",
		"/proc/swaps":                   "Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n",
		"/proc/sys/net/ipv4/ip_forward": "0\n",
	}, v1Controllers...)
	n, r := Checks{Files: f}.Node()
	want := Node{SwapOn: true}
	if n != want {
		t.Errorf("Node = %+v, want %+v", n, want)
	}
	if n.CgroupDriver() != "cgroupfs" {
		t.Errorf("driver = %s, want cgroupfs", n.CgroupDriver())
	}
	if got := len(n.Adaptations()); got != 6 {
		t.Errorf("%d adaptations, want one per missing feature (6): %q", got, n.Adaptations())
	}
	checkStatuses(t, r, map[string]Status{
		"capabilities": OK, "CAP_SYS_RESOURCE": Warn, "cgroups": Warn, "cgroup controllers": OK,
		"swap": Warn, "overlayfs": Warn, "br_netfilter": Warn, "vxlan": Warn, "nf_conntrack": Warn,
		"ip_forward": OK, "network namespace": Warn,
	})
	if err := r.Err(); err != nil {
		t.Errorf("Err = %v, want nil: a restricted host only warns", err)
	}
	// What the node logs as adaptations is left out of the rest.
	if got := r.Warnings(n.Adaptations()...); len(got) != 2 ||
		!strings.HasPrefix(got[0], "vxlan:") || !strings.HasPrefix(got[1], "nf_conntrack:") {
		t.Errorf("warnings less adaptations = %q, want vxlan and nf_conntrack", got)
	}
}

func TestNodeModernHost(t *testing.T) {
	f := fakeRoot(t, map[string]string{
		"/proc/self/status":                            caps("000001ffffffffff"),
		"/proc/filesystems":                            "nodev\toverlay\n",
		"/proc/swaps":                                  "Filename Type Size Used Priority\n",
		"/sys/fs/cgroup/cgroup.controllers":            "cpuset cpu io memory hugetlb pids rdma misc\n",
		"/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
		"/proc/sys/net/ipv4/ip_forward":                "1\n",
	}, "/run/systemd/system", "/sys/module/vxlan", "/sys/module/nf_conntrack")
	hostNetns(t, f)
	n, r := Checks{Files: f}.Node()
	if !n.CgroupV2 || !n.Systemd || !n.CapSysResource || !n.Overlay || !n.BrNetfilter || n.SwapOn || !n.HostNetns {
		t.Errorf("Node = %+v, want every feature present", n)
	}
	if n.CgroupDriver() != "systemd" {
		t.Errorf("driver = %s, want systemd", n.CgroupDriver())
	}
	if len(n.Adaptations()) != 0 {
		t.Errorf("adaptations %q, want none", n.Adaptations())
	}
	if r.Count(OK) != len(r) {
		t.Errorf("want every result ok:\n%s", r)
	}
}

func TestNodeNoCgroupsFails(t *testing.T) {
	f := fakeRoot(t, map[string]string{"/proc/self/status": caps("0")})
	_, r := Checks{Files: f}.Node()
	err := r.Err()
	for _, want := range []string{"cgroups: none found under /sys/fs/cgroup", "mount cgroup v2", "CAP_SYS_ADMIN and CAP_NET_ADMIN missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err = %v, want it to contain %q", err, want)
		}
	}
}

func TestCgroupControllers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		dirs  []string
		v2    bool
		want  Status
		say   string
	}{
		{name: "v1 complete", dirs: v1Controllers, want: OK, say: "v1: cpu, cpuacct, cpuset, memory, pids, devices"},
		{name: "v1 without pids", dirs: slices.DeleteFunc(slices.Clone(v1Controllers), func(d string) bool {
			return strings.HasSuffix(d, "/pids")
		}), want: Fail, say: "v1 without pids"},
		{name: "v2 complete", files: map[string]string{"/sys/fs/cgroup/cgroup.controllers": "cpu memory pids\n"},
			v2: true, want: OK, say: "v2: cpu, memory, pids"},
		{name: "v2 without memory", files: map[string]string{"/sys/fs/cgroup/cgroup.controllers": "cpu io pids\n"},
			v2: true, want: Warn, say: "v2 without memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cgroupControllers(fakeRoot(t, tc.files, tc.dirs...), tc.v2)
			if r.Status != tc.want || !strings.Contains(r.Detail, tc.say) {
				t.Errorf("got %s, want %s saying %q", r.Line(), tc.want, tc.say)
			}
		})
	}
}

func TestKernelModule(t *testing.T) {
	const release = "/proc/sys/kernel/osrelease"
	for _, tc := range []struct {
		name  string
		files map[string]string
		dirs  []string
		want  string // "" means cannot tell
	}{
		{name: "loaded", dirs: []string{"/sys/module/vxlan"}, want: "loaded"},
		{name: "built in", files: map[string]string{release: "6.1.0\n",
			"/lib/modules/6.1.0/modules.builtin": "kernel/drivers/net/vxlan/vxlan.ko\n"}, want: "built into the kernel"},
		{name: "module", files: map[string]string{release: "6.1.0\n",
			"/lib/modules/6.1.0/modules.dep": "kernel/drivers/net/vxlan/vxlan.ko.zst: kernel/net/ipv4/udp_tunnel.ko.zst\n"},
			want: "available as a module, loaded when needed"},
		{name: "other kernel's modules", files: map[string]string{release: "6.1.0\n",
			"/lib/modules/5.10.0/modules.dep": "kernel/drivers/net/vxlan/vxlan.ko:\n"}},
		{name: "nothing to go on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found := kernelModule(fakeRoot(t, tc.files, tc.dirs...), "vxlan")
			if got != tc.want || found != (tc.want != "") {
				t.Errorf("kernelModule = %q, %v; want %q", got, found, tc.want)
			}
		})
	}
}
