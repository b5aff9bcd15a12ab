package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/transport"

	"github.com/monokube/monokube/internal/agent"
	"github.com/monokube/monokube/internal/carotate"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/lifecycle"
)

func agentCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "join this machine to a cluster as a node: monokube agent --server https://HOST:6443 --token TOKEN",
		Flags: agentFlags(config.DefaultAgentInput()),
		Action: func(c *cli.Context) error {
			in, err := loadInput(c, "", config.DefaultAgentInput())
			if err != nil {
				return err
			}
			cfg, err := config.BuildAgent(in, config.OSHost{})
			if err != nil {
				return err
			}
			cfg.ConfigFile = c.String("config")
			log, err := setupLogging(stderr, cfg.Debug)
			if err != nil {
				return err
			}
			quickCertReload()
			return orRestart(c, log, "agent", agent.Run(c.Context, cfg, log))
		},
	}
}

// quickCertReload has every client-go client of this process read its
// client certificate's files again every 30 s instead of upstream's 5
// minutes (a variable upstream exposes for this): the in-process
// components' certificates are renewed or re-issued by a CA rotation
// while they run, and a CA rotation retires the old CA soon after.
func quickCertReload() { transport.CertCallbackRefreshDuration = carotate.CertReload }

// orRestart is err, the end of a server's or agent's run, unless it is a
// restart the node asked for (lifecycle.RestartError): then it runs this
// command again in place of the process.
func orRestart(c *cli.Context, log *slog.Logger, role string, err error) error {
	if restart := (*lifecycle.RestartError)(nil); errors.As(err, &restart) && c.Err() == nil {
		log.Info("restarting the "+role, "reason", restart.Reason)
		return restartSelf()
	}
	return err
}

// restartSelf runs this command again in place of this process (same
// PID, arguments and environment): through the launcher if one started
// it, so that a binary replaced meanwhile is the one that runs.
func restartSelf() error {
	path := os.Getenv("MONOKUBE_LAUNCHER")
	if path == "" {
		var err error
		if path, err = os.Executable(); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	}
	if err := syscall.Exec(path, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("restart %s: %w; start monokube again (systemd does)", path, err)
	}
	return nil
}

// agentFlags declares the agent's flags; every name except "config" is
// also a config-file key (config.AgentInput), and defaults come from d.
func agentFlags(d config.AgentInput) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Value: config.DefaultConfigFile, EnvVars: env("config"),
			Usage: "YAML config file; keys are these flags' long names, flags override it"},
		str("server", "", "the server to join, https://HOST:PORT"),
		str("token", "", "join token (the server's <data-dir>/server/token or `monokube token create`); only needed to join; prefer --token-file or MONOKUBE_TOKEN, which keep it out of the process list"),
		str("token-file", "", "file holding the join token"),
		str("data-dir", d.DataDir, "directory for all state"),
		str("run-dir", d.RunDir, "directory for runtime state (sockets)"),
		str("node-ip", "", "this node's IP address (default: the address of the default-route interface)"),
		str("node-name", "", "this node's name (default: the hostname)"),
		list("kubelet-arg", "extra kubelet flag as key=value (repeatable)"),
		list("kube-proxy-arg", "extra kube-proxy flag as key=value (repeatable)"),
		str("flannel-backend", d.FlannelBackend, "pod network between nodes: vxlan (flannel), or none to install your own CNI"),
		str("flannel-iface", d.FlannelIface, "interface flannel uses between nodes (default: the one holding --node-ip)"),
		boolean("debug", "log at debug level"),
	}
}
