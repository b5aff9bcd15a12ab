package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/agent"
	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/install"
	"github.com/monokube/monokube/internal/killall"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/sysreq"
	"github.com/monokube/monokube/internal/systemd"
)

// installFlags are install's own flags, beside the role's.
func installFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "root", Usage: "write the binary, config and unit under this directory instead of / (staging an image); nothing is started"},
		&cli.StringFlag{Name: "bin-dir", Value: install.DefaultBinDir, Usage: "where the monokube binary (and kubectl, crictl, ctr links) go"},
	}
}

func installCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "install",
		Usage: "install monokube as a systemd service with these settings, enable and start it",
		Subcommands: []*cli.Command{
			{
				Name:  "server",
				Usage: "install a server: monokube install server [server flags]",
				Flags: append(serverFlags(config.DefaultServerInput()), installFlags()...),
				Action: func(c *cli.Context) error {
					d := config.DefaultServerInput()
					in, err := loadInput(c, c.String("root"), d)
					if err != nil {
						return err
					}
					cfg, err := config.BuildServer(in, config.OSHost{})
					if err != nil {
						return err
					}
					// The service runs from /: write the paths absolute.
					in.DataDir, in.RunDir, in.WriteKubeconfig = cfg.DataDir, cfg.RunDir, cfg.WriteKubeconfig
					return runInstall(c, stderr, systemd.Server, in, d)
				},
			},
			{
				Name:  "agent",
				Usage: "install an agent: monokube install agent --server URL --token TOKEN [agent flags]",
				Flags: append(agentFlags(config.DefaultAgentInput()), installFlags()...),
				Action: func(c *cli.Context) error {
					d := config.DefaultAgentInput()
					in, err := loadInput(c, c.String("root"), d)
					if err != nil {
						return err
					}
					cfg, err := config.BuildAgent(in, config.OSHost{})
					if err != nil {
						return err
					}
					in.DataDir, in.RunDir = cfg.DataDir, cfg.RunDir
					return runInstall(c, stderr, systemd.Agent, in, d)
				},
			},
		},
	}
}

// runInstall writes the config file (the settings that differ from d) and
// installs role.
func runInstall(c *cli.Context, stderr io.Writer, role systemd.Role, in, d any) error {
	root := c.String("root")
	if root == "" {
		if err := sysreq.OS().Root("install"); err != nil {
			return err
		}
	}
	for _, f := range []string{"config", "bin-dir"} {
		if !filepath.IsAbs(c.String(f)) {
			return fmt.Errorf("--%s %q must be an absolute path: the service does not run from this directory", f, c.String(f))
		}
	}
	data, err := config.Marshal(in, d)
	if err != nil {
		return err
	}
	src, err := selfBinary()
	if err != nil {
		return err
	}
	log, err := setupLogging(stderr, false)
	if err != nil {
		return err
	}
	return install.Install(install.Options{
		Paths:         install.Paths{Root: root, BinDir: c.String("bin-dir"), Config: c.String("config")},
		Role:          role,
		Source:        src,
		Config:        data,
		DefaultConfig: c.String("config") == config.DefaultConfigFile,
		Start:         root == "" && systemd.Running(),
	}, log)
}

// selfBinary is the file users run as monokube: the launcher that started
// this process, or this binary itself.
func selfBinary() (string, error) {
	if p := os.Getenv("MONOKUBE_LAUNCHER"); p != "" {
		return p, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this binary: %w", err)
	}
	return p, nil
}

// turndownFlags locate the node for killall and uninstall.
func turndownFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Value: config.DefaultConfigFile, EnvVars: env("config"),
			Usage: "the node's config file, for its data-dir, run-dir and kubelet cgroup-root"},
		&cli.StringFlag{Name: "data-dir", EnvVars: env("data-dir"), Usage: "the node's data dir (default: from the config file, else " + config.DefaultDataDir + ")"},
		&cli.StringFlag{Name: "run-dir", EnvVars: env("run-dir"), Usage: "the node's run dir (default: from the config file, else " + config.DefaultRunDir + ")"},
	}
}

// nodeFiles reads where the node keeps its state, by datadir's one rule,
// and the other NodeFiles keys from the config file (under root).
func nodeFiles(c *cli.Context, root string) (config.NodeFiles, error) {
	t := told(c, root)
	path, named := t.ConfigFile()
	nf, err := config.LoadNodeFiles(root+path, named)
	if err != nil {
		return nf, err
	}
	dirs := t.Resolve(datadir.Layout{Data: nf.DataDir, Run: nf.RunDir})
	nf.DataDir, nf.RunDir = dirs.Data, dirs.Run
	return nf, nil
}

func turndownTarget(nf config.NodeFiles) killall.Target {
	return killall.Target{DataDir: nf.DataDir, RunDir: nf.RunDir, CgroupRoot: nf.CgroupRoot()}
}

func killallCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name: "killall",
		Usage: "stop this node's monokube, containerd, shims and containers, and remove its mounts, " +
			"interfaces, iptables chains, routes and cgroups; the data dir stays",
		Flags: turndownFlags(),
		Action: func(c *cli.Context) error {
			if err := sysreq.OS().Root("killall"); err != nil {
				return err
			}
			nf, err := nodeFiles(c, "")
			if err != nil {
				return err
			}
			log, err := setupLogging(stderr, false)
			if err != nil {
				return err
			}
			if err := killall.Check(turndownTarget(nf)); err != nil {
				return err
			}
			if systemd.Running() {
				// Else Restart=always brings monokube back at once.
				if err := install.StopServices(install.Paths{}, "stop"); err != nil {
					return err
				}
			}
			return killall.Run(turndownTarget(nf), log)
		},
	}
}

func uninstallCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "uninstall",
		Usage: "remove this node from its cluster, run killall, and remove the service, config, binary and data dir",
		Flags: append(turndownFlags(),
			&cli.BoolFlag{Name: "keep-data", Usage: "keep the data dir (certificates, etcd data, images)"},
			&cli.StringFlag{Name: "root", Usage: "remove only what monokube install --root staged under this directory (nothing is stopped)"},
			&cli.StringFlag{Name: "bin-dir", Value: install.DefaultBinDir, Usage: "where monokube install put the binary"},
		),
		Action: func(c *cli.Context) error {
			if err := sysreq.OS().Root("uninstall"); err != nil {
				return err
			}
			root := c.String("root")
			nf, err := nodeFiles(c, root)
			if err != nil {
				return err
			}
			log, err := setupLogging(stderr, false)
			if err != nil {
				return err
			}
			if err := killall.Check(turndownTarget(nf)); root == "" && err != nil {
				return err
			}
			r := install.Removal{
				Paths:    install.Paths{Root: root, BinDir: c.String("bin-dir"), Config: c.String("config")},
				Node:     turndownTarget(nf),
				KeepData: c.Bool("keep-data"),
				Stop:     root == "" && systemd.Running(),
			}
			l := datadir.Layout{Data: nf.DataDir, Run: nf.RunDir}
			if _, err := os.Stat(l.Server()); err == nil {
				r.Kubeconfig = nf.WriteKubeconfig
			} else if kc := node.NewAgentCreds(l).KubeletKubeconfig; fsutil.Exists(kc) {
				st, _ := apilb.LoadState(node.ServersFile(l)) // none: only the kubeconfig's server
				r.Leave = func(ctx context.Context) error { return agent.Leave(ctx, kc, st.Addresses()) }
			}
			return install.Uninstall(c.Context, r, log)
		},
	}
}
