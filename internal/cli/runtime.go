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

// nodeLayout is where the node on this machine keeps its state, by
// datadir.Locate's rule. ctr and crictl take no flags of monokube's, so
// only the environment and the config file speak.
func nodeLayout() (datadir.Layout, error) {
	return datadir.Locate(datadir.Told{Getenv: os.Getenv})
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
