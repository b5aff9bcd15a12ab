package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/cni"
	"github.com/monokube/monokube/internal/containerd"
	"github.com/monokube/monokube/internal/flannel"
	"github.com/monokube/monokube/internal/kubelet"
	"github.com/monokube/monokube/internal/kubeproxy"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/upgrade"
)

// Components returns the node's components in start order: containerd,
// the image import, the kubelet, the pod network config, the registry
// mirror, kube-proxy.
func (p *Plan) Components(log *slog.Logger) ([]lifecycle.Component, error) {
	with := func(name string) *slog.Logger { return log.With("component", name) }
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find monokube's own executable: %w", err)
	}
	l := p.layout
	images := containerd.NewImages(containerd.ImageSources{
		Address: l.ContainerdSocket(), Snapshotter: p.snapshotter(), Embedded: p.assets.Images,
		Dir: l.Images(), StateFile: l.ImageState(),
	}, with("image-import"))
	newClient := func() (kubernetes.Interface, error) { return nodeClient(p.creds.KubeletKubeconfig) }
	out := []lifecycle.Component{
		upgrade.NewSweeper(l.Data, with("version-sweeper"), p.assets.BinDir, filepath.Dir(self)),
		containerd.NewDaemon(self, p.containerdConfig, l.ContainerdSocket(), p.assets.BinDir, with("containerd")),
		lifecycle.Await(images),
	}
	if p.cfg.Upgrade.MinorChange {
		out = append(out, lifecycle.Await(upgrade.NewDrainer(p.cfg.Upgrade, p.cfg.NodeName, newClient, with("upgrade-drain"))))
	}
	out = append(out, kubelet.New(p.kubeletArgs, l.ContainerdSocket()))
	if p.creds.TLSBootstrap {
		out = append(out, lifecycle.Await(credsWait{kubelet.ClientCertFile(l.KubeletRoot())}))
	}
	if p.cfg.FlannelBackend != BackendNone {
		overlay := flannel.New(flannel.Config{
			NodeName: p.cfg.NodeName, Iface: p.cfg.FlannelIface, NodeIP: p.cfg.NodeIP, ClusterCIDR: p.cfg.ClusterCIDR,
			Kubeconfig: p.creds.KubeletKubeconfig, NetConf: l.AgentFile("flannel-net-conf.json"),
			SubnetFile: l.FlannelSubnetFile(),
		}, newClient, with("flannel"))
		out = append(out, overlay, lifecycle.Await(cni.NewWriter(overlay.Network, l.CNIConfDir(), with("cni-config"))))
	}
	if p.mirrored() {
		out = append(out, p.mirrorComponents(newClient, with)...)
	}
	return append(out, kubeproxy.New(p.kubeProxyArgs),
		lifecycle.Background(upgrade.NewUncordoner(p.cfg.NodeName, newClient, with("upgrade-uncordon")))), nil
}

// Pod network choices (--flannel-backend).
const (
	BackendVXLAN = "vxlan"
	BackendNone  = "none"
)

// credsWait is ready once a joining node's kubelet holds its client
// certificate: what comes after it talks to the apiserver as the node.
type credsWait struct{ file string }

var _ lifecycle.Task = credsWait{}

// Name implements lifecycle.Task.
func (credsWait) Name() string { return "node-credentials" }

// Do implements lifecycle.Task: it polls for the certificate file.
func (w credsWait) Do(ctx context.Context) error {
	for {
		if _, err := os.Stat(w.file); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// nodeClient talks to the apiserver as the node itself.
func nodeClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load node kubeconfig: %w", err)
	}
	return kubernetes.NewForConfig(rc)
}
