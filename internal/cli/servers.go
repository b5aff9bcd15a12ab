package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/node"
)

// serversCommand shows what a node's apiserver load balancer knows (an
// agent's, or a server's own node's).
func serversCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "servers",
		Usage: "list the apiservers this node knows, their health and the one its connections go to (on an agent, or a server with its node)",
		Flags: append(dirFlags("node"),
			outputFlag("table", "json")),
		Action: func(c *cli.Context) error { return listServers(c, stdout) },
	}
}

func listServers(c *cli.Context, stdout io.Writer) error {
	out, err := outputFormat(c, "table", "json")
	if err != nil {
		return err
	}
	nf, err := nodeFiles(c, "")
	if err != nil {
		return err
	}
	st, err := apilb.LoadState(node.ServersFile(datadir.Layout{Data: nf.DataDir}))
	if err != nil {
		return err
	}
	if out == "json" {
		return printData(stdout, out, st)
	}
	return serversTable(stdout, st)
}

func serversTable(w io.Writer, st apilb.State) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "the node's clients use %s; as of %s:\n", apilb.URL(st.Listen), st.Updated.Local().Format(time.DateTime))
	fmt.Fprintln(tw, "SERVER\tHEALTH\tCURRENT\tCONNECTIONS\tJOINED")
	for _, s := range st.Servers {
		health, current, joined := "healthy", "", ""
		if !s.Healthy {
			health = "down: " + s.LastError
		}
		if s.Address == st.Current {
			current = "*"
		}
		if s.Joined {
			joined = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Address, health, current, s.Connections, joined)
	}
	return tw.Flush()
}
