package cli

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	ctrapp "github.com/containerd/containerd/v2/cmd/ctr/app"
	"github.com/urfave/cli/v2"

	bundled "github.com/monokube/monokube/embed"
	"github.com/monokube/monokube/internal/assets"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/containerd"
	"github.com/monokube/monokube/internal/datadir"
)

// containerdCommand is the hidden subcommand the node runs as its
// supervised containerd child. containerd parses its own flags.
func containerdCommand() *cli.Command {
	cmd := passThrough("containerd", "run containerd (started by monokube itself)", containerd.Main)
	cmd.Hidden = true
	return cmd
}

// ctrCommand is containerd's ctr, pointed at this node's containerd and
// the Kubernetes namespace unless told otherwise ($CONTAINERD_ADDRESS,
// $CONTAINERD_NAMESPACE, or the node's $MONOKUBE_RUN_DIR).
func ctrCommand() *cli.Command {
	return passThrough("ctr", "run containerd's ctr against this node's containerd (namespace k8s.io)", runCtr)
}

// nodeLayout is where the node on this machine keeps its state, by the
// precedence the server and agent use: $MONOKUBE_DATA_DIR and
// $MONOKUBE_RUN_DIR, then data-dir and run-dir in the config file
// ($MONOKUBE_CONFIG, else the default one), then the defaults. ctr and
// crictl take no flags of monokube's, so the environment stands in for them.
func nodeLayout() (datadir.Layout, error) {
	file, explicit := os.Getenv(env("config")[0]), true
	if file == "" {
		file, explicit = config.DefaultConfigFile, false
	}
	nf, err := config.LoadNodeFiles(file, explicit)
	if err != nil {
		return datadir.Layout{}, err
	}
	if v := os.Getenv(env("data-dir")[0]); v != "" {
		nf.DataDir = v
	}
	if v := os.Getenv(env("run-dir")[0]); v != "" {
		nf.RunDir = v
	}
	return datadir.Layout{Data: nf.DataDir, Run: nf.RunDir}, nil
}

func runCtr(ctx context.Context, args []string) error {
	l, err := nodeLayout()
	if err != nil {
		return err
	}
	defaults := []string{"ctr"}
	if os.Getenv("CONTAINERD_ADDRESS") == "" {
		defaults = append(defaults, "--address", l.ContainerdSocket())
	}
	if os.Getenv("CONTAINERD_NAMESPACE") == "" {
		defaults = append(defaults, "--namespace", containerd.Namespace)
	}
	return ctrapp.New().Run(ctx, append(defaults, args...))
}

// crictlCommand runs the embedded crictl (extracted with the node's other
// helper binaries) against this node's containerd.
func crictlCommand() *cli.Command {
	return passThrough("crictl", "run crictl against this node's containerd",
		func(_ context.Context, args []string) error { return runCrictl(args) })
}

func runCrictl(args []string) error {
	l, err := nodeLayout()
	if err != nil {
		return err
	}
	tar := bundled.BinTar()
	binDir, err := assets.ExtractBin(l.Data, tar.Data, tar.SHA256)
	if err != nil {
		return err
	}
	env := os.Environ()
	if os.Getenv("CONTAINER_RUNTIME_ENDPOINT") == "" {
		env = append(env, "CONTAINER_RUNTIME_ENDPOINT=unix://"+l.ContainerdSocket())
	}
	bin := filepath.Join(binDir, "crictl")
	return syscall.Exec(bin, append([]string{"crictl"}, args...), env)
}

// multicall maps the names monokube answers to when invoked through a
// symlink to the subcommand that implements them.
func multicall(args []string) []string {
	switch name := filepath.Base(args[0]); name {
	case "kubectl", "ctr", "crictl":
		return append([]string{"monokube", name}, args[1:]...)
	}
	return args
}
