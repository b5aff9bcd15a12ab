package node

import (
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/containerd"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/kubelet"
	"github.com/monokube/monokube/internal/kubeproxy"
	"github.com/monokube/monokube/internal/sysreq"
	"github.com/monokube/monokube/internal/testutil"
)

// hosts are the two machine shapes the configs adapt to.
var hosts = map[string]sysreq.Node{ //nolint:gochecknoglobals // test fixture
	// A modern host: cgroup v2 under systemd, full capabilities.
	"systemd-v2": {CgroupV2: true, Systemd: true, CapSysResource: true, Overlay: true, BrNetfilter: true, HostNetns: true},
	// A restricted one like the CI machines: cgroup v1, no CAP_SYS_RESOURCE,
	// swap on, no overlayfs, in a network namespace of its own.
	"restricted-v1": {SwapOn: true},
}

func fixture(t *testing.T) (Config, datadir.Layout, Creds, Assets) {
	s := testutil.ServerConfig(t, "/var/lib/monokube", func(in *config.ServerInput) {
		in.KubeletArg = []string{"max-pods=50"}
		in.KubeProxyArg = []string{"v=3"}
	})
	cfg := Config{NodeName: s.NodeName, NodeIP: s.NodeIP, ClusterCIDR: s.ClusterCIDR, ServiceCIDR: s.ServiceCIDR,
		ClusterDNS: s.ClusterDNS, ClusterDomain: s.ClusterDomain, KubeletArgs: s.Args.Kubelet, KubeProxyArgs: s.Args.KubeProxy}
	l := datadir.Layout{Data: "/var/lib/monokube", Run: "/run/monokube"}
	a := Assets{BinDir: "/var/lib/monokube/data/0123456789abcdef/bin", SandboxImage: "monokube.local/pause:3.10"}
	return cfg, l, NewCreds(l), a
}

func TestRenderedConfigs(t *testing.T) {
	cfg, l, creds, a := fixture(t)
	for name, host := range hosts {
		t.Run(name, func(t *testing.T) {
			snap := "native"
			if host.Overlay {
				snap = "overlayfs"
			}
			ctrd, err := containerd.Render(ContainerdConfig(l, host, a, snap, false))
			check(t, err)
			testutil.Golden(t, "containerd-"+name+".toml", ctrd)

			kc := KubeletConfig(cfg, l, creds, host)
			kc.ResolvConf = "/etc/resolv.conf" // the test machine's choice must not leak in
			kubeletYAML, err := kubelet.Render(kc)
			check(t, err)
			testutil.Golden(t, "kubelet-"+name+".yaml", kubeletYAML)

			proxyYAML, err := kubeproxy.Render(KubeProxyConfig(cfg, creds, host))
			check(t, err)
			testutil.Golden(t, "kube-proxy-"+name+".yaml", proxyYAML)
		})
	}
}

// The kubelet's flags carry identity and paths; --kubelet-arg comes last
// so it wins over both the file and monokube's own flags.
func TestKubeletArgs(t *testing.T) {
	cfg, l, creds, _ := fixture(t)
	args := kubelet.Args(KubeletConfig(cfg, l, creds, hosts["restricted-v1"]), "/k.yaml")
	got := strings.Join(args, " ")
	want := "--config=/k.yaml --kubeconfig=/var/lib/monokube/agent/etc/kubelet.kubeconfig --hostname-override=node1 " +
		"--node-ip=192.168.1.10 --root-dir=/var/lib/monokube/agent/kubelet --cert-dir=/var/lib/monokube/agent/kubelet/pki --max-pods=50"
	if got != want {
		t.Errorf("kubelet args\n got %s\nwant %s", got, want)
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The registry mirror serves and pulls with the kubelet's certificates:
// a server's node the files the server issues, a joined node those its
// kubelet bootstrapped (certificate and key in one file); peers are
// verified with the kubelet-serving CA bundle either keeps current.
func TestMirrorFiles(t *testing.T) {
	l := datadir.Layout{Data: "/var/lib/monokube", Run: "/run/monokube"}
	pki := "/var/lib/monokube/agent/kubelet/pki/"
	for _, tc := range []struct {
		name  string
		creds Creds
		want  MirrorFiles
	}{
		{"server", NewCreds(l), MirrorFiles{
			ServingCert: "/var/lib/monokube/agent/tls/serving-kubelet.crt", ServingKey: "/var/lib/monokube/agent/tls/serving-kubelet.key",
			ClientCert: "/var/lib/monokube/agent/tls/client-kubelet.crt", ClientKey: "/var/lib/monokube/agent/tls/client-kubelet.key",
			ClientCA: "/var/lib/monokube/agent/tls/client-ca.crt", ServingCA: "/var/lib/monokube/server/tls/kubelet-ca-bundle.crt",
		}},
		{"agent", NewAgentCreds(l), MirrorFiles{
			ServingCert: pki + "kubelet-server-current.pem", ServingKey: pki + "kubelet-server-current.pem",
			ClientCert: pki + "kubelet-client-current.pem", ClientKey: pki + "kubelet-client-current.pem",
			ClientCA: "/var/lib/monokube/agent/tls/client-ca.crt", ServingCA: "/var/lib/monokube/agent/tls/kubelet-serving-ca.crt",
		}},
	} {
		if got := NewMirrorFiles(l, tc.creds); got != tc.want {
			t.Errorf("%s: NewMirrorFiles = %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}
