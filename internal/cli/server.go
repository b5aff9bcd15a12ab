package cli

import (
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	mklog "github.com/monokube/monokube/internal/log"
	"github.com/monokube/monokube/internal/server"
	"github.com/monokube/monokube/manifests"
)

func serverCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run the control plane (etcd, kube-apiserver, controller-manager, scheduler) and a node on this machine",
		Flags: append(serverFlags(config.DefaultServerInput()), resetFlags()...),
		Action: func(c *cli.Context) error {
			cfg, err := serverConfig(c)
			if err != nil {
				return err
			}
			cfg.ClusterReset = c.Bool("cluster-reset") || c.String("cluster-reset-restore-path") != ""
			cfg.Restore = config.Restore{Path: c.String("cluster-reset-restore-path"), RecoveryKeyFile: c.String("recovery-key-file")}
			log, err := setupLogging(stderr, cfg.Debug)
			if err != nil {
				return err
			}
			quickCertReload()
			return orRestart(c, log, "server", server.Run(c.Context, cfg, log))
		},
	}
}

// resetFlags are the flags of one start that resets or restores the
// cluster; they are not config-file keys (a reset is an act, not a
// setting).
func resetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "cluster-reset",
			Usage: "after a lost quorum: make this server's etcd member the only member of its cluster, over its data (refused while another member answers); a flag of one start, not a config-file key"},
		&cli.StringFlag{Name: "cluster-reset-restore-path",
			Usage: "restore the cluster from this snapshot file (`monokube etcd-snapshot save`), as the only member; the current etcd data is moved aside. Implies --cluster-reset"},
		&cli.StringFlag{Name: "recovery-key-file",
			Usage: "with --cluster-reset-restore-path on a machine whose data dir has no recovery key: the file holding the cluster's recovery key"},
	}
}

// setupLogging makes the process's one log stream and routes klog and the
// kubelet's log format into it.
func setupLogging(stderr io.Writer, debug bool) (*slog.Logger, error) {
	opts := mklog.Options{Debug: debug}
	log := mklog.Setup(stderr, opts)
	if err := mklog.Klog(log, opts); err != nil {
		return nil, err
	}
	if err := mklog.RegisterComponentFormat(log); err != nil {
		return nil, err
	}
	return log, nil
}

// serverConfig merges defaults, the config file and the flags the user set,
// in that order, and validates the result.
func serverConfig(c *cli.Context) (*config.Server, error) {
	in, err := loadInput(c, "", config.DefaultServerInput())
	if err != nil {
		return nil, err
	}
	cfg, err := config.BuildServer(in, config.OSHost{})
	if err != nil {
		return nil, err
	}
	if cfg.Certs, err = config.CertsFromEnv(os.Getenv(config.TestCertLifetimeEnv)); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loadInput merges defaults (in), the config file (under root) and the
// flags the user set, in that order. The data and run dir follow
// datadir's one rule, the rule every command uses.
func loadInput[T interface {
	config.ServerInput | config.AgentInput
	Dirs() datadir.Layout
}](c *cli.Context, root string, in T) (T, error) {
	t := told(c, root)
	path, named := t.ConfigFile()
	if err := config.LoadFile(root+path, named, &in); err != nil {
		return in, err
	}
	config.Overlay(&in, locatedFlags{c, t.Resolve(in.Dirs())})
	return in, nil
}

// serverFlags declares the server's flags; every name except "config" is
// also a config-file key (config.ServerInput), and defaults come from d.
func serverFlags(d config.ServerInput) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Value: config.DefaultConfigFile, EnvVars: env("config"),
			Usage: "YAML config file; keys are these flags' long names, flags override it"},
		str("data-dir", d.DataDir, "directory for all state: PKI, etcd data, credentials"),
		str("run-dir", d.RunDir, "directory for runtime state (sockets, pid files)"),
		str("node-ip", d.NodeIP, "this node's IP address (default: the address of the default-route interface)"),
		str("node-name", d.NodeName, "this node's name (default: the hostname)"),
		str("server", d.Server, "a server of the cluster to join as another server, https://HOST:PORT (first start only; default: start a new cluster)"),
		str("token", d.Token, "server token to join with (`monokube token create --role server`); prefer --token-file or MONOKUBE_TOKEN, which keep it out of the process list"),
		str("token-file", d.TokenFile, "file holding the server token"),
		str("bind-address", d.BindAddress, "address the apiserver listens on"),
		&cli.IntFlag{Name: "https-listen-port", Value: d.HTTPSListenPort, EnvVars: env("https-listen-port"),
			Usage: "port the apiserver listens on"},
		str("advertise-address", d.AdvertiseAddress, "address the apiserver advertises to the cluster (default: node IP)"),
		list("tls-san", "extra DNS name or IP for the apiserver's serving certificate (repeatable)"),
		str("cluster-cidr", d.ClusterCIDR, "network for pod IPs"),
		str("service-cidr", d.ServiceCIDR, "network for service IPs"),
		str("cluster-dns", d.ClusterDNS, "cluster DNS service IP, inside --service-cidr"),
		str("cluster-domain", d.ClusterDomain, "cluster DNS domain"),
		str("write-kubeconfig", d.WriteKubeconfig, "where to write the admin kubeconfig"),
		str("write-kubeconfig-mode", d.WriteKubeconfigMode, "file mode of the admin kubeconfig (octal)"),
		boolean("disable-agent", "run the control plane only, no node on this machine"),
		str("flannel-backend", d.FlannelBackend, "pod network between nodes: vxlan (flannel), or none to install your own CNI"),
		str("flannel-iface", d.FlannelIface, "interface flannel uses between nodes (default: the one holding --node-ip)"),
		str("pod-security", d.PodSecurity, "Pod Security level enforced in namespaces that set none: privileged, baseline or restricted (kube-system is exempt; restricted is also audited and warned about)"),
		str("token-ttl", d.TokenTTL, "life of the server's join token in <data-dir>/server/token, replaced by a new one at half its life; 0 never expires"),
		boolean("embedded-registry", "every node serves the images it holds to the other nodes (mutual TLS, nodes only), and pulls ask the nodes first"),
		list("embedded-registry-mirror", "a registry whose pulls ask the nodes first, host[:port] (repeatable; default: \"*\", every registry)"),
		list("disable", "leave out an addon, and remove it if deployed: "+strings.Join(manifests.Names(), ", ")+" (repeatable or comma-separated)"),
		list("kube-apiserver-arg", "extra kube-apiserver flag as key=value (repeatable)"),
		list("kube-controller-manager-arg", "extra kube-controller-manager flag as key=value (repeatable)"),
		list("kube-scheduler-arg", "extra kube-scheduler flag as key=value (repeatable)"),
		list("kubelet-arg", "extra kubelet flag as key=value (repeatable)"),
		list("kube-proxy-arg", "extra kube-proxy flag as key=value (repeatable)"),
		str("etcd-snapshot-schedule-cron", d.EtcdSnapshotScheduleCron, "when to take scheduled etcd snapshots: cron fields (a leading seconds field allowed) or @every DURATION"),
		&cli.IntFlag{Name: "etcd-snapshot-retention", Value: d.EtcdSnapshotRetention, EnvVars: env("etcd-snapshot-retention"),
			Usage: "scheduled etcd snapshots this server keeps (on-demand ones are pruned by `monokube etcd-snapshot prune`)"},
		boolean("etcd-disable-snapshots", "take no scheduled etcd snapshots"),
		str("etcd-snapshot-dir", d.EtcdSnapshotDir, "where this server keeps its etcd snapshots (default: <data-dir>/server/db/snapshots)"),
		boolean("debug", "log at debug level (klog verbosity 2, etcd info)"),
	}
}

func str(name, value, usage string) cli.Flag {
	return &cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)}
}

func list(name, usage string) cli.Flag {
	return &cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: env(name)}
}

func boolean(name, usage string) cli.Flag {
	return &cli.BoolFlag{Name: name, Usage: usage, EnvVars: env(name)}
}

// env is the environment variable that can also set flag name:
// MONOKUBE_DATA_DIR for data-dir.
func env(name string) []string { return []string{datadir.EnvVar(name)} }
