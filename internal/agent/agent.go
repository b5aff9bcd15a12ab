// Package agent wires the agent role: at first start it joins the cluster
// with a join token (internal/join), writing nothing before the server has
// proved itself; then, and at every later start, it runs a node whose
// kubelet bootstraps its own certificates.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/join"
	"github.com/monokube/monokube/internal/kubelet"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/sysreq"
	"github.com/monokube/monokube/internal/systemd"
	"github.com/monokube/monokube/internal/upgrade"
)

// Run checks the machine, joins the cluster if this node has not yet, and
// runs the node until ctx ends.
func Run(ctx context.Context, cfg *config.Agent, log *slog.Logger) error {
	l := datadir.Layout{Data: cfg.DataDir, Run: cfg.RunDir}
	lock := datadir.NewNodeLock(l)
	defer lock.Release()
	if err := lock.Early(); err != nil {
		return err
	}
	host, report := Preflight(cfg, sysreq.OS())
	if err := report.Admit(log, host.Adaptations()...); err != nil {
		return err
	}
	prev, err := upgrade.Load(l.VersionFile())
	if err != nil {
		return err
	}
	step, err := upgrade.Check(prev, upgrade.Current(), false, cfg.DataDir)
	if err != nil {
		return err
	}
	creds := node.NewAgentCreds(l)
	cluster, err := joinOnce(ctx, cfg, l, creds, log)
	if err != nil {
		return err
	}
	// After the join: a refused token must leave nothing behind.
	if err := l.EnsureAgent(); err != nil {
		return err
	}
	if err := lock.Take(); err != nil { // the dirs a first start made
		return err
	}
	bootstrapped := fsutil.Exists(kubelet.ClientCertFile(l.KubeletRoot()))
	if bootstrapped {
		creds.BootstrapKubeconfig = "" // the kubelet has its own certificate
		dropJoinToken(cfg, l, log)
	}
	nodeCfg, err := nodeConfig(cfg, cluster, clusterFile(l))
	if err != nil {
		return err
	}
	nodeCfg.Upgrade = step
	components, err := node.Build(nodeCfg, l, creds, host, log)
	if err != nil {
		return err
	}
	g := lifecycle.NewGroup(log, components...)
	g.OnReady(upgrade.RecordVersion(l.VersionFile(), log))
	g.OnReady(systemd.NotifyReady(log))
	if !bootstrapped {
		g.OnReady(func() { dropJoinToken(cfg, l, log) }) // ready: the kubelet holds its certificate
	}
	return g.Run(ctx)
}

// dropJoinToken removes the join token from what this node keeps once the
// kubelet holds its own client certificate (renewed with it from then on):
// the bootstrap kubeconfig and the token key of the config file. A token
// is a credential to join nodes, and a joined node has no use for it.
func dropJoinToken(cfg *config.Agent, l datadir.Layout, log *slog.Logger) {
	bootstrap := node.NewAgentCreds(l).BootstrapKubeconfig
	if err := os.Remove(bootstrap); err == nil {
		log.Info("the node holds its own certificate: removed the join token's bootstrap kubeconfig", "file", bootstrap)
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("cannot remove the bootstrap kubeconfig, which holds the join token", "file", bootstrap, "err", err)
	}
	if cfg.ConfigFile == "" {
		return
	}
	if dropped, err := config.DropKey(cfg.ConfigFile, "token"); err != nil {
		log.Warn("cannot drop the join token from the config file", "file", cfg.ConfigFile, "err", err)
	} else if dropped {
		log.Info("the node holds its own certificate: dropped the join token from the config file", "file", cfg.ConfigFile)
	}
}

// Preflight checks, before anything is written, every requirement of an
// agent on this machine: what `monokube check-config --agent` prints and
// what Run refuses to start on. host is what the node adapts to.
func Preflight(cfg *config.Agent, c sysreq.Checks) (sysreq.Node, sysreq.Report) {
	host, nodeReport := node.Preflight(c)
	report := append(sysreq.Report{c.RunsAsRoot("agent")}, nodeReport...)
	report = append(report, sysreq.Writable(cfg.DataDir, "data-dir"), c.DiskFree(cfg.DataDir, "data-dir"))
	return host, append(report, c.Ports(node.Ports(cfg.NodeIP))...)
}

// clusterFile records what the node learned when it joined, so a restart
// needs neither the token nor the server.
func clusterFile(l datadir.Layout) string { return l.AgentFile("cluster.json") }

// joined is what a node keeps from joining.
type joined struct {
	Server   string            `json:"server"`
	Settings map[string]string `json:"settings"`
}

// joinOnce returns what this node learned when it joined, joining now if
// it has not: discovery first, then the node's files.
func joinOnce(ctx context.Context, cfg *config.Agent, l datadir.Layout, creds node.Creds, log *slog.Logger) (joined, error) {
	var j joined
	if fsutil.LoadState(clusterFile(l), &j); j.Server != "" {
		if j.Server != cfg.Server {
			log.Warn("this node joined another server address; keeping it", "joined", j.Server, "--server", cfg.Server)
		}
		return j, nil
	}
	if cfg.Token == "" {
		return j, errors.New("--token is required to join: copy it from the server's <data-dir>/server/token or create one there with `monokube token create`")
	}
	t, err := join.ParseToken(cfg.Token)
	if err != nil {
		return j, err
	}
	log.Info("joining the cluster", "server", cfg.Server)
	d, err := join.Discover(ctx, cfg.Server, t, join.DefaultPatience(), log)
	if err != nil {
		return j, err
	}
	j = joined{Server: d.Server, Settings: d.Settings}
	if _, err := nodeConfig(cfg, j, "the server's settings"); err != nil {
		return joined{}, err // refused before anything is written
	}
	if err := writeJoinFiles(l, creds, d, t); err != nil {
		return joined{}, err
	}
	if err := fsutil.SaveState(clusterFile(l), j); err != nil {
		return j, err
	}
	log.Info("joined: the kubelet now requests its certificates", "server", d.Server)
	return j, nil
}

// writeJoinFiles writes the server CA, the client CA kubelets trust and the
// bootstrap kubeconfig holding the token.
func writeJoinFiles(l datadir.Layout, creds node.Creds, d join.Discovery, t join.Token) error {
	if err := l.EnsureAgent(); err != nil {
		return err
	}
	if err := fsutil.WriteFile(l.AgentTLSFile("server-ca.crt"), d.CA, 0o644); err != nil {
		return err
	}
	if err := fsutil.WriteFile(creds.ClientCA, []byte(d.Settings["client-ca.crt"]), 0o644); err != nil {
		return err
	}
	kc, err := clientcmd.Write(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"cluster": {Server: d.Server, CertificateAuthorityData: d.CA}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"join": {Token: t.Bootstrap()}},
		Contexts:       map[string]*clientcmdapi.Context{"join": {Cluster: "cluster", AuthInfo: "join"}},
		CurrentContext: "join",
	})
	if err != nil {
		return fmt.Errorf("render bootstrap kubeconfig: %w", err)
	}
	return fsutil.WriteFile(creds.BootstrapKubeconfig, kc, 0o600)
}

// nodeConfig combines the agent's flags with the cluster's settings.
func nodeConfig(cfg *config.Agent, j joined, file string) (node.Config, error) {
	s := j.Settings
	clusterCIDR, err1 := netip.ParsePrefix(s["cluster-cidr"])
	serviceCIDR, err2 := netip.ParsePrefix(s["service-cidr"])
	dns, err3 := netip.ParseAddr(s["cluster-dns"])
	if err := errors.Join(err1, err2, err3); err != nil || s["cluster-domain"] == "" {
		return node.Config{}, fmt.Errorf("the cluster settings in %s are incomplete (%v): remove it to join again", file, err)
	}
	if err := config.CheckNodeNetwork(cfg.NodeIP, clusterCIDR, serviceCIDR); err != nil {
		return node.Config{}, err
	}
	if d := s["cluster-domain"]; cfg.NodeName == d || strings.HasSuffix(cfg.NodeName, "."+d) {
		return node.Config{}, fmt.Errorf("node name %s is under the cluster domain %s, where it would stand for a cluster name in DNS: give --node-name", cfg.NodeName, d)
	}
	return node.Config{
		NodeName: cfg.NodeName, NodeIP: cfg.NodeIP,
		ClusterCIDR: clusterCIDR, ServiceCIDR: serviceCIDR, ClusterDNS: dns, ClusterDomain: s["cluster-domain"],
		KubeletArgs: cfg.Args.Kubelet, KubeProxyArgs: cfg.Args.KubeProxy, Debug: cfg.Debug,
		FlannelBackend: cfg.FlannelBackend, FlannelIface: cfg.FlannelIface,
	}, nil
}
