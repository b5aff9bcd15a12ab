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
	"os"
	"strings"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
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
	lb, err := balancer(l, creds, cluster, log)
	if err != nil {
		return err
	}
	bootstrapped := fsutil.Exists(kubelet.ClientCertFile(l.KubeletRoot()))
	if bootstrapped {
		creds.BootstrapKubeconfig = "" // the kubelet has its own certificate
		dropJoinToken(cfg, l, log)
	}
	nodeCfg, err := nodeConfig(cfg, cluster.Settings)
	if err != nil {
		return err
	}
	nodeCfg.Upgrade = step
	assets, err := node.LoadAssets(l.Data)
	if err != nil {
		return err
	}
	plan, err := node.Prepare(nodeCfg, l, creds, host, assets, log)
	if err != nil {
		return err
	}
	components, err := plan.Components(log)
	if err != nil {
		plan.Undo(log)
		return err
	}
	trust := &trustSync{layout: l, creds: creds, registries: nodeCfg.EmbeddedRegistry, log: log.With("component", "ca-trust")}
	g := lifecycle.NewGroup(log, append(append([]lifecycle.Component{lb}, components...), trust)...)
	g.OnStartFailure(func() { plan.Undo(log) }) // what Prepare changed on the host
	g.OnReady(upgrade.RecordVersion(l.VersionFile(), log))
	g.OnReady(systemd.TakeNotifier().ReadyHook(log))
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
	// The registry mirror's port if the cluster mirrors, as far as a node
	// that has joined knows (a first start learns it when it joins).
	j, _ := loadJoined(clusterFile(datadir.Layout{Data: cfg.DataDir, Run: cfg.RunDir}))
	return host, append(report, c.Ports(node.Ports(cfg.NodeIP, len(j.Settings.EmbeddedRegistry) > 0))...)
}

// nodeConfig combines the agent's flags with the cluster's settings,
// refusing a node address inside the cluster's networks and a node name
// under its domain.
func nodeConfig(cfg *config.Agent, s identity.ClusterSettings) (node.Config, error) {
	if err := config.CheckNodeNetwork(cfg.NodeIP, s.ClusterCIDR, s.ServiceCIDR); err != nil {
		return node.Config{}, err
	}
	if d := s.ClusterDomain; cfg.NodeName == d || strings.HasSuffix(cfg.NodeName, "."+d) {
		return node.Config{}, fmt.Errorf("node name %s is under the cluster domain %s, where it would stand for a cluster name in DNS: give --node-name", cfg.NodeName, d)
	}
	return node.Config{
		NodeName: cfg.NodeName, NodeIP: cfg.NodeIP,
		ClusterCIDR: s.ClusterCIDR, ServiceCIDR: s.ServiceCIDR, ClusterDNS: s.ClusterDNS, ClusterDomain: s.ClusterDomain,
		KubeletArgs: cfg.Args.Kubelet, KubeProxyArgs: cfg.Args.KubeProxy, Debug: cfg.Debug,
		FlannelBackend: cfg.FlannelBackend, FlannelIface: cfg.FlannelIface,
		EmbeddedRegistry: s.EmbeddedRegistry,
	}, nil
}
