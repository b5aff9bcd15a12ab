package cli

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/agent"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/server"
	"github.com/monokube/monokube/internal/sysreq"
)

// checkConfigCommand prints every requirement this machine must meet to run
// the server (or, with --agent, an agent) as ok, warn or fail with its fix.
// It only probes: nothing is written or left running.
func checkConfigCommand(stdout io.Writer) *cli.Command {
	return newCheckConfigCommand(stdout, sysreq.OS())
}

// newCheckConfigCommand is checkConfigCommand with the machine's probes
// given, for tests.
func newCheckConfigCommand(stdout io.Writer, checks sysreq.Checks) *cli.Command {
	return &cli.Command{
		Name: "check-config",
		Usage: "check that this machine can run monokube: every requirement as ok, warn or fail, with its fix " +
			"(changes nothing; exits 1 only on fail). Takes the server's flags",
		Flags: append(serverFlags(config.DefaultServerInput()), &cli.BoolFlag{Name: "agent",
			Usage: "check for an agent (the node's requirements and ports) instead of a server"}),
		Action: func(c *cli.Context) error {
			report, err := checkConfig(c, checks)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(stdout, "%s%s\n", report, report.Summary()); err != nil {
				return err
			}
			if n := report.Count(sysreq.Fail); n > 0 {
				return fmt.Errorf("%d of %d requirements failed: see the fixes above", n, len(report))
			}
			return nil
		},
	}
}

// checkConfig is the report of the preflight the role runs at start, so
// check-config and start cannot disagree. With --agent the config file is
// an agent's.
func checkConfig(c *cli.Context, checks sysreq.Checks) (sysreq.Report, error) {
	if !c.Bool("agent") {
		cfg, err := serverConfig(c)
		if err != nil {
			return nil, err
		}
		_, report := server.Preflight(cfg, checks)
		return report, nil
	}
	in, err := loadInput(c, "", config.DefaultAgentInput())
	if err != nil {
		return nil, err
	}
	if in.Server == "" {
		in.Server = "https://server.invalid" // the preflight needs no server
	}
	cfg, err := config.BuildAgent(in, config.OSHost{})
	if err != nil {
		return nil, err
	}
	_, report := agent.Preflight(cfg, checks)
	return report, nil
}
