package node

import (
	"fmt"
	"log/slog"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/cni"
	"github.com/monokube/monokube/internal/containerd"
	"github.com/monokube/monokube/internal/kubelet"
	"github.com/monokube/monokube/internal/kubeproxy"
	"github.com/monokube/monokube/internal/lifecycle"
)

// Components returns the node's components in start order: containerd,
// the image import, the kubelet, the pod network config, kube-proxy.
func (p *Plan) Components(log *slog.Logger) ([]lifecycle.Component, error) {
	with := func(name string) *slog.Logger { return log.With("component", name) }
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find monokube's own executable: %w", err)
	}
	client, err := nodeClient(p.creds.KubeletKubeconfig)
	if err != nil {
		return nil, err
	}
	l := p.layout
	images := containerd.NewImages(containerd.ImageSources{
		Address: l.ContainerdSocket(), Snapshotter: p.snapshotter(), Embedded: p.assets.Images,
		Dir: l.Images(), StateFile: l.ImageState(),
	}, with("images"))
	return []lifecycle.Component{
		containerd.NewDaemon(self, p.containerdConfig, l.ContainerdSocket(), p.assets.BinDir, with("containerd")),
		images,
		kubelet.New(p.kubeletArgs, l.ContainerdSocket(), with("kubelet")),
		cni.NewWriter(client, p.cfg.NodeName, l.CNIConfDir(), with("cni")),
		kubeproxy.New(p.kubeProxyArgs, with("kube-proxy")),
	}, nil
}

// nodeClient talks to the apiserver as the node itself.
func nodeClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load node kubeconfig: %w", err)
	}
	return kubernetes.NewForConfig(rc)
}
