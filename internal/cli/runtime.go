package cli

import (
	"context"
	"os"
	"path/filepath"

	ctrapp "github.com/containerd/containerd/v2/cmd/ctr/app"
	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/containerd"
	"github.com/monokube/monokube/internal/datadir"
)

// containerdCommand is the hidden subcommand the node runs as its
// supervised containerd child. containerd parses its own flags.
func containerdCommand() *cli.Command {
	return &cli.Command{
		Name:            "containerd",
		Usage:           "run containerd (started by monokube itself)",
		Hidden:          true,
		SkipFlagParsing: true,
		HideHelp:        true,
		Action: func(c *cli.Context) error {
			return containerd.Main(c.Context, c.Args().Slice())
		},
	}
}

// ctrCommand is containerd's ctr, pointed at this node's containerd and
// the Kubernetes namespace unless told otherwise.
func ctrCommand() *cli.Command {
	return &cli.Command{
		Name:            "ctr",
		Usage:           "run containerd's ctr against this node's containerd (namespace k8s.io)",
		SkipFlagParsing: true,
		HideHelp:        true,
		Action: func(c *cli.Context) error {
			return runCtr(c.Context, c.Args().Slice())
		},
	}
}

func runCtr(ctx context.Context, args []string) error {
	l := datadir.Layout{Data: config.DefaultDataDir, Run: config.DefaultRunDir}
	defaults := []string{"ctr"}
	if os.Getenv("CONTAINERD_ADDRESS") == "" {
		defaults = append(defaults, "--address", l.ContainerdSocket())
	}
	if os.Getenv("CONTAINERD_NAMESPACE") == "" {
		defaults = append(defaults, "--namespace", containerd.Namespace)
	}
	return ctrapp.New().Run(ctx, append(defaults, args...))
}

// multicall maps the names monokube answers to when invoked through a
// symlink to the subcommand that implements them.
func multicall(args []string) []string {
	switch name := filepath.Base(args[0]); name {
	case "kubectl", "ctr":
		return append([]string{"monokube", name}, args[1:]...)
	}
	return args
}
