package cli

import (
	"context"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	componentcli "k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	kubectl "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/monokube/monokube/internal/config"
)

func kubectlCommand() *cli.Command {
	return passThrough("kubectl", "run kubectl against this cluster (uses "+config.DefaultKubeconfig+" unless told otherwise)",
		func(_ context.Context, args []string) error { return runKubectl(args) })
}

// passThrough is a command that hands all its arguments, unparsed, to run:
// an embedded upstream tool that parses its own flags.
func passThrough(name, usage string, run func(ctx context.Context, args []string) error) *cli.Command {
	return &cli.Command{
		Name:            name,
		Usage:           usage,
		SkipFlagParsing: true,
		HideHelp:        true,
		Action: func(c *cli.Context) error {
			return run(c.Context, c.Args().Slice())
		},
	}
}

// runKubectl runs the upstream kubectl command as cmd/kubectl/kubectl.go
// does. With neither --kubeconfig nor $KUBECONFIG given it uses monokube's
// admin kubeconfig when that exists, as k3s does.
func runKubectl(args []string) error {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	flags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().
		WithDiscoveryBurst(300).WithDiscoveryQPS(50.0).WithWarningPrinter(streams)
	if os.Getenv("KUBECONFIG") == "" && !hasKubeconfigFlag(args) {
		if _, err := os.Stat(config.DefaultKubeconfig); err == nil {
			*flags.KubeConfig = config.DefaultKubeconfig
		}
	}
	argv := append([]string{"kubectl"}, args...)
	logs.GlogSetter(kubectl.GetLogVerbosity(argv)) //nolint:errcheck // as upstream: best effort
	cmd := kubectl.NewDefaultKubectlCommandWithArgs(kubectl.KubectlOptions{
		PluginHandler: kubectl.NewDefaultPluginHandler(plugin.ValidPluginFilenamePrefixes),
		Arguments:     argv,
		ConfigFlags:   flags,
		IOStreams:     streams,
	})
	cmd.SetArgs(args)
	if err := componentcli.RunNoErrOutput(cmd); err != nil {
		// kubectl prints its own errors and picks its exit code.
		kubectlutil.CheckErr(err)
	}
	return nil
}

func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			return true
		}
	}
	return false
}
