// Package node wires a Kubernetes node: it adapts to the machine, extracts
// the helper binaries, renders the configs of containerd, the kubelet,
// kube-proxy and the pod network, and returns them as lifecycle
// components in start order.
package node

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	bundled "github.com/monokube/monokube/embed"
	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/assets"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/containerd"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/kubelet"
	"github.com/monokube/monokube/internal/kubeproxy"
	"github.com/monokube/monokube/internal/mirror"
	"github.com/monokube/monokube/internal/sysreq"
	"github.com/monokube/monokube/internal/upgrade"
)

// Config is the node's part of the configuration, shared by the server
// and agent roles.
type Config struct {
	NodeName      string
	NodeIP        netip.Addr
	ClusterCIDR   netip.Prefix
	ServiceCIDR   netip.Prefix
	ClusterDNS    netip.Addr
	ClusterDomain string
	KubeletArgs   []config.Arg
	KubeProxyArgs []config.Arg
	// FlannelBackend is "vxlan" (the default: monokube runs the overlay) or
	// "none" (the user installs a CNI; monokube writes no CNI config).
	FlannelBackend string
	FlannelIface   string // the overlay's interface; empty: the one holding NodeIP
	// EmbeddedRegistry are the registries whose pulls ask the nodes'
	// registry mirrors first ("*" for every one); empty: no mirror, and
	// containerd keeps its default registry hosts configuration.
	EmbeddedRegistry []string
	// Upgrade is this start's version step: a Kubernetes minor-version
	// change drains the node before its kubelet starts.
	Upgrade upgrade.Step
	Debug   bool
}

// Creds are the node's credentials; the role that joins the node writes
// them (a server's identity.Init, an agent's join and bootstrap).
type Creds struct {
	identity.NodeFiles
	// TLSBootstrap is set on a joined node (an agent): the kubelet gets
	// and rotates its own certificates, and kube-proxy uses the kubelet's
	// credentials.
	TLSBootstrap bool
	// BootstrapKubeconfig holds the join token until the kubelet has its
	// client certificate; the agent then removes it.
	BootstrapKubeconfig string
	// KubeletServingCA is the bundle of the CAs that sign kubelets'
	// serving certificates: the node verifies the other nodes' registry
	// mirrors with it (a server's copy is the apiserver's, an agent's the
	// one the servers publish).
	KubeletServingCA string
}

// NewCreds lays out the node's credentials under l.
func NewCreds(l datadir.Layout) Creds {
	return Creds{NodeFiles: identity.NodeFilesAt(l), KubeletServingCA: control.NewCreds(l).KubeletCABundle}
}

// NewAgentCreds lays out a joined node's credentials under l: the kubelet
// bootstraps its own, and kube-proxy shares them.
func NewAgentCreds(l datadir.Layout) Creds {
	f := identity.NodeFilesAt(l)
	return Creds{
		NodeFiles: identity.NodeFiles{
			ClientCA: f.ClientCA, KubeletKubeconfig: f.KubeletKubeconfig, KubeProxyKubeconfig: f.KubeletKubeconfig,
		},
		TLSBootstrap:        true,
		BootstrapKubeconfig: l.AgentFile("bootstrap.kubeconfig"),
		KubeletServingCA:    l.AgentTLSFile("kubelet-serving-ca.crt"),
	}
}

// Assets are the build products the binary carries.
type Assets struct {
	BinDir       string                     // extracted runc, shim, CNI plugins
	SandboxImage string                     // the pause image's name
	Images       []containerd.EmbeddedImage // every embedded image
}

// Plan is a prepared node: every config rendered, ready to run.
type Plan struct {
	cfg    Config
	layout datadir.Layout
	creds  Creds
	host   sysreq.Node
	assets Assets
	// changed is what Prepare changed on the host, for Undo.
	changed hostChanges

	containerdConfig string
	kubeletArgs      []string
	kubeProxyArgs    []string
}

// Preflight checks, before anything is written, what any node needs of
// this machine: capabilities, cgroups, kernel features and the iptables
// commands kube-proxy runs. The report fails where no node can run here (no
// cgroups, no iptables); host is what the node adapts to, and Prepare logs
// those adaptations.
func Preflight(c sysreq.Checks) (sysreq.Node, sysreq.Report) {
	host, rep := c.Node()
	return host, append(rep, c.Iptables())
}

// Ports lists every address a node listens on, for the preflight; the
// registry mirror's if mirrored.
func Ports(nodeIP netip.Addr, mirrored bool) []sysreq.Port {
	lo := netip.MustParseAddr("127.0.0.1")
	ports := []sysreq.Port{
		{Addr: nodeIP, Port: kubelet.Port, What: "kubelet port"},
		{Addr: lo, Port: kubelet.HealthzPort, What: "kubelet healthz port"},
		{Addr: lo, Port: kubeproxy.HealthzPort, What: "kube-proxy healthz port"},
		{Addr: lo, Port: kubeproxy.MetricsPort, What: "kube-proxy metrics port"},
		{Addr: lo, Port: apilb.Port, What: "apiserver load balancer port"},
	}
	if mirrored {
		ports = append(ports, sysreq.Port{Addr: nodeIP, Port: mirror.Port, What: "embedded registry mirror port"})
	}
	return ports
}

// ContainerdConfigFile is where the node's containerd config is.
func ContainerdConfigFile(l datadir.Layout) string { return l.AgentFile("containerd.toml") }

// ServersFile is where a node's apiserver balancer keeps the apiservers it
// knows (apilb.State), an agent's and a server's node's alike.
func ServersFile(l datadir.Layout) string { return l.AgentFile("apiservers.json") }

// Prepare adapts to the host, renders the configs and writes them. The
// role has made the node's directories (datadir.Layout.EnsureAgent) first.
// A start that fails before its node runs calls the plan's Undo.
func Prepare(cfg Config, l datadir.Layout, creds Creds, host sysreq.Node, a Assets, log *slog.Logger) (*Plan, error) {
	for _, msg := range host.Adaptations() {
		log.Warn(msg)
	}
	changed, err := prepareHost(cfg, log)
	if err != nil {
		return nil, err
	}
	p := &Plan{cfg: cfg, layout: l, creds: creds, host: host, assets: a, changed: changed,
		containerdConfig: ContainerdConfigFile(l)}
	for _, write := range []func() error{p.prepareRegistryHosts, p.writeContainerdConfig, p.writeKubeletConfig, p.writeKubeProxyConfig} {
		if err := write(); err != nil {
			p.Undo(log)
			return nil, err
		}
	}
	return p, nil
}

func (p *Plan) snapshotter() string {
	if p.host.Overlay {
		return "overlayfs"
	}
	return "native"
}

// ContainerdConfig is the containerd part of the plan.
func ContainerdConfig(l datadir.Layout, host sysreq.Node, a Assets, snapshotter string, debug bool) containerd.Config {
	return containerd.Config{
		Root:                l.ContainerdRoot(),
		State:               l.ContainerdState(),
		Address:             l.ContainerdSocket(),
		RuncBinary:          filepath.Join(a.BinDir, "runc"),
		RuncRoot:            l.RuncRoot(),
		CNIBinDir:           a.BinDir,
		CNIConfDir:          l.CNIConfDir(),
		OptDir:              l.ContainerdOpt(),
		SandboxImage:        a.SandboxImage,
		Snapshotter:         snapshotter,
		RestrictOOMScoreAdj: !host.CapSysResource,
		SystemdCgroup:       host.CgroupDriver() == "systemd",
		Debug:               debug,
	}
}

func (p *Plan) writeContainerdConfig() error {
	cc := ContainerdConfig(p.layout, p.host, p.assets, p.snapshotter(), p.cfg.Debug)
	if p.mirrored() {
		cc.RegistryHosts = RegistryHostsDir(p.layout)
	}
	data, err := containerd.Render(cc)
	if err != nil {
		return err
	}
	return writeConfig(p.containerdConfig, data)
}

// KubeletConfig is the kubelet part of the plan.
func KubeletConfig(cfg Config, l datadir.Layout, c Creds, host sysreq.Node) kubelet.Config {
	kc := kubelet.Config{
		NodeName:            cfg.NodeName,
		NodeIP:              cfg.NodeIP,
		RootDir:             l.KubeletRoot(),
		Kubeconfig:          c.KubeletKubeconfig,
		ClientCAFile:        c.ClientCA,
		TLSBootstrap:        c.TLSBootstrap,
		BootstrapKubeconfig: c.BootstrapKubeconfig,
		RuntimeEndpoint:     l.ContainerdSocket(),
		ClusterDNS:          cfg.ClusterDNS,
		ClusterDomain:       cfg.ClusterDomain,
		ResolvConf:          resolvConf(),
		CgroupDriver:        host.CgroupDriver(),
		CgroupV1:            !host.CgroupV2,
		NoOOMScoreAdj:       !host.CapSysResource,
		SwapOn:              host.SwapOn,
		// Where the host already holds the kubelet's kernel settings it
		// only checks them; elsewhere it sets them, as upstream.
		ProtectKernelDefaults: host.KernelDefaults,
		Debug:                 cfg.Debug,
		Args:                  cfg.KubeletArgs,
	}
	if !c.TLSBootstrap {
		kc.TLSCertFile, kc.TLSKeyFile = c.KubeletServing.Cert(), c.KubeletServing.Key()
	}
	return kc
}

func (p *Plan) writeKubeletConfig() error {
	kc := KubeletConfig(p.cfg, p.layout, p.creds, p.host)
	data, err := kubelet.Render(kc)
	if err != nil {
		return err
	}
	file := p.layout.AgentFile("kubelet.yaml")
	p.kubeletArgs = kubelet.Args(kc, file)
	return writeConfig(file, data)
}

// KubeProxyConfig is the kube-proxy part of the plan.
func KubeProxyConfig(cfg Config, c Creds, host sysreq.Node) kubeproxy.Config {
	return kubeproxy.Config{
		NodeName:      cfg.NodeName,
		Kubeconfig:    c.KubeProxyKubeconfig,
		ClusterCIDR:   cfg.ClusterCIDR,
		HostConntrack: host.HostNetns,
		NoOOMScoreAdj: !host.CapSysResource,
		Debug:         cfg.Debug,
		Args:          cfg.KubeProxyArgs,
	}
}

func (p *Plan) writeKubeProxyConfig() error {
	kc := KubeProxyConfig(p.cfg, p.creds, p.host)
	data, err := kubeproxy.Render(kc)
	if err != nil {
		return err
	}
	file := p.layout.AgentFile("kube-proxy.yaml")
	p.kubeProxyArgs = kubeproxy.Args(kc, file)
	return writeConfig(file, data)
}

// resolvConf is the host's resolver file for pods with dnsPolicy Default.
// systemd-resolved's stub (127.0.0.53) is useless inside a pod: prefer
// the file with the real upstream servers where it exists.
func resolvConf() string {
	const resolved = "/run/systemd/resolve/resolv.conf"
	if _, err := os.Stat(resolved); err == nil {
		return resolved
	}
	return "/etc/resolv.conf"
}

func writeConfig(path string, data []byte) error {
	if err := fsutil.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// LoadAssets extracts the embedded helper binaries (once per binary
// version) and lists the embedded images.
func LoadAssets(dataDir string) (Assets, error) {
	bin := bundled.BinTar()
	binDir, err := assets.ExtractBin(dataDir, bin.Data, bin.SHA256)
	bin.Release()
	if err != nil {
		return Assets{}, err
	}
	imgs, err := bundled.Images()
	if err != nil {
		return Assets{}, err
	}
	a := Assets{BinDir: binDir, SandboxImage: imgs[bundled.ImagePause].Ref}
	for _, k := range slices.Sorted(maps.Keys(imgs)) {
		img := imgs[k]
		a.Images = append(a.Images, containerd.EmbeddedImage{
			Ref: img.Ref, SHA256: img.Archive.SHA256, Archive: img.Archive.Data, Release: img.Archive.Release,
		})
	}
	return a, nil
}
