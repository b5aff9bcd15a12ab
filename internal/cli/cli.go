// Package cli is monokube's command line: the urfave/cli application, its
// commands and their flags. It turns flags into validated config, owns the
// process-wide logging setup and prints the one user-facing error.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/version"
)

// Run runs the command line args (args[0] is the program) and returns the
// process exit code. Invoked as "kubectl", "ctr" or "crictl" (a symlink),
// it is that command.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if err := newApp(stdout, stderr).RunContext(ctx, multicall(args)); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			return coded.ExitCode() // a code the systemd unit acts on
		}
		return 1
	}
	return 0
}

func newApp(stdout, stderr io.Writer) *cli.App {
	info := version.Get()
	return &cli.App{
		Name:      "monokube",
		Usage:     "a whole Kubernetes node in one binary",
		Version:   info.Version,
		Writer:    stdout,
		ErrWriter: stderr,
		// A pass-through value such as enable-admission-plugins=A,B or a
		// cipher list keeps its commas; --disable and --tls-san split
		// their own lists (internal/config).
		DisableSliceFlagSeparator: true,
		Commands: []*cli.Command{
			serverCommand(stderr),
			agentCommand(stderr),
			kubectlCommand(),
			ctrCommand(),
			crictlCommand(),
			containerdCommand(),
			tokenCommand(stdout),
			etcdCommand(stdout),
			etcdSnapshotCommand(stdout),
			certificateCommand(stdout),
			secretsEncryptCommand(stdout),
			serviceAccountKeyCommand(stdout),
			serversCommand(stdout),
			imagesCommand(stdout, stderr),
			installCommand(stderr),
			uninstallCommand(stderr),
			killallCommand(stderr),
			checkConfigCommand(stdout),
			versionCommand(stdout),
		},
		HideVersion: true,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version and exit"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				_, err := fmt.Fprint(stdout, info.String())
				return err
			}
			return cli.ShowAppHelp(c)
		},
		// Errors are printed once by Run, not by urfave/cli.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func versionCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of monokube and of the components it embeds",
		Action: func(*cli.Context) error {
			_, err := fmt.Fprint(stdout, version.Get().String())
			return err
		},
	}
}
