package server

import (
	"log/slog"

	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/node"
)

// nodeBalancer is how this server's own node (its kubelet, kube-proxy and
// flannel, whose kubeconfigs name apilb.NodeAddr) reaches the apiservers,
// as an agent's does: this server's apiserver while it is ready, another
// server's otherwise. It learns the servers from the default/kubernetes
// EndpointSlices and keeps them in node.ServersFile, which `monokube
// servers` shows.
func nodeBalancer(cfg *config.Server, l datadir.Layout, id *identity.Identity, log *slog.Logger) *apilb.LB {
	return apilb.New(apilb.Config{
		Listen:       apilb.NodeAddr(),
		Joined:       control.LocalAPIServer(cfg.HTTPSPort),
		Prefer:       true,
		StateFile:    node.ServersFile(l),
		ServerCAFile: id.Creds.ServerCA.Cert(),
		Kubeconfig:   id.Node.KubeletKubeconfig,
	}, log.With("component", "apiserver-lb"))
}
