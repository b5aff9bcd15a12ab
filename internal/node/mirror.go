package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/containerd/containerd/v2/client"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/containerd"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/kubelet"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/mirror"
)

// RegistryHostsDir is containerd's registry hosts configuration
// (config_path) on a node whose pulls ask the registry mirrors.
func RegistryHostsDir(l datadir.Layout) string { return l.AgentFile("registry-hosts") }

// mirrored is whether the node runs the embedded registry mirror.
func (p *Plan) mirrored() bool { return len(p.cfg.EmbeddedRegistry) > 0 }

// prepareRegistryHosts makes the mirror's hosts directory, or removes
// it when the mirror is off: containerd then reads its default one.
func (p *Plan) prepareRegistryHosts() error {
	dir := RegistryHostsDir(p.layout)
	if !p.mirrored() {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove the registry mirror's hosts configuration: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// MirrorFiles are the credentials of a node's registry mirror: the
// kubelet's own, so the mirror has nothing of its own to rotate.
type MirrorFiles struct {
	// ServingCert and ServingKey are the kubelet's serving certificate,
	// which names the node's addresses; ClientCert and ClientKey its
	// client certificate (system:node:<name>), which the peers want. A
	// bootstrapped kubelet keeps each pair in one file, named twice.
	ServingCert, ServingKey string
	ClientCert, ClientKey   string
	// ClientCA verifies the peers' client certificates; ServingCA the
	// peers' serving ones.
	ClientCA, ServingCA string
}

// NewMirrorFiles are the mirror's credentials of a node laid out under l
// with creds.
func NewMirrorFiles(l datadir.Layout, creds Creds) MirrorFiles {
	f := MirrorFiles{
		ServingCert: creds.KubeletServing.Cert(), ServingKey: creds.KubeletServing.Key(),
		ClientCert: creds.KubeletClient.Cert(), ClientKey: creds.KubeletClient.Key(),
		ClientCA: creds.ClientCA, ServingCA: creds.KubeletServingCA,
	}
	if creds.TLSBootstrap {
		root := l.KubeletRoot()
		f.ServingCert, f.ServingKey = kubelet.ServingCertFile(root), kubelet.ServingCertFile(root)
		f.ClientCert, f.ClientKey = kubelet.ClientCertFile(root), kubelet.ClientCertFile(root)
	}
	return f
}

// mirrorComponents are the registry mirror (after the kubelet, whose
// certificates it serves with) and the peers list containerd asks.
func (p *Plan) mirrorComponents(newClient func() (kubernetes.Interface, error), with func(string) *slog.Logger) []lifecycle.Component {
	files := NewMirrorFiles(p.layout, p.creds)
	srv := &mirrorServer{socket: p.layout.ContainerdSocket(), root: p.layout.ContainerdRoot(), srv: mirror.Server{
		Addr: net.JoinHostPort(p.cfg.NodeIP.String(), strconv.Itoa(mirror.Port)),
		Cert: files.ServingCert, Key: files.ServingKey, ClientCA: files.ClientCA,
		Log: with("registry-mirror"),
	}}
	peers := &peersComponent{newClient: newClient, peers: mirror.Peers{
		Node: p.cfg.NodeName, Dir: RegistryHostsDir(p.layout), Log: with("registry-mirror-peers"),
		Hosts: mirror.Hosts{
			Registries: p.cfg.EmbeddedRegistry,
			CA:         files.ServingCA, ClientCert: files.ClientCert, ClientKey: files.ClientKey,
		},
	}}
	return []lifecycle.Component{srv, peers}
}

// mirrorServer serves the mirror from the node's containerd, which runs
// before it.
type mirrorServer struct {
	socket, root string // containerd's socket and root directory
	srv          mirror.Server
}

// Name implements lifecycle.Component.
func (m *mirrorServer) Name() string { return m.srv.Name() }

// Run connects to containerd and serves until ctx ends.
func (m *mirrorServer) Run(ctx context.Context) error {
	c, err := client.New(m.socket, client.WithDefaultNamespace(containerd.Namespace))
	if err != nil {
		return fmt.Errorf("the registry mirror cannot connect to containerd at %s: %w", m.socket, err)
	}
	defer c.Close()
	srv := m.srv
	srv.Handler = &mirror.Handler{Store: mirror.Containerd{Client: c, Root: m.root}, Log: srv.Log}
	return srv.Run(ctx)
}

// peersComponent runs mirror.Peers with a client of the node.
type peersComponent struct {
	newClient func() (kubernetes.Interface, error)
	peers     mirror.Peers
}

// Name implements lifecycle.Component.
func (c *peersComponent) Name() string { return c.peers.Name() }

// Run implements lifecycle.Component.
func (c *peersComponent) Run(ctx context.Context) error {
	client, err := c.newClient()
	if err != nil {
		return err
	}
	peers := c.peers
	peers.Client = client
	return peers.Run(ctx)
}
