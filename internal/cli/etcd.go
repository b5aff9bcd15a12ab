package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/server"
)

// etcdCommand looks at the cluster's etcd from a server, with the server's
// own etcd client certificate.
func etcdCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "etcd",
		Usage: "look at the cluster's etcd (run on a server)",
		Subcommands: []*cli.Command{{
			Name:  "members",
			Usage: "list etcd's members: role (voter or learner), health, leader, URLs",
			Flags: append(dirFlags("server"),
				outputFlag("table", "json")),
			Action: func(c *cli.Context) error { return listMembers(c, stdout) },
		}, {
			Name:      "remove",
			Usage:     "remove a server's etcd member, after checking that the others keep a quorum (leadership moves first)",
			ArgsUsage: "NAME",
			Flags:     dirFlags("server"),
			Action:    func(c *cli.Context) error { return removeMember(c, stdout) },
		}},
	}
}

// serverLayout is the data dir of the server the etcd commands run
// beside, found once from their flags and config file.
func serverLayout(c *cli.Context) (datadir.Layout, error) {
	nf, err := nodeFiles(c, "")
	if err != nil {
		return datadir.Layout{}, err
	}
	return datadir.Layout{Data: nf.DataDir}, nil
}

// localEtcd is a client of the etcd member of the server whose data dir
// is l.
func localEtcd(l datadir.Layout) (*etcd.Cluster, error) {
	creds := control.NewCreds(l)
	if !fsutil.Exists(creds.EtcdClient.Key()) {
		return nil, fmt.Errorf("no etcd client certificate in data dir %s (%s): run this on a server, or give its --data-dir or --config", l.Data, creds.EtcdClient.Key())
	}
	return creds.LocalEtcd(slog.New(slog.DiscardHandler))
}

func removeMember(c *cli.Context, stdout io.Writer) error {
	switch {
	case c.NArg() == 0:
		return errors.New("give the name of the member to remove (`monokube etcd members` lists them)")
	case c.NArg() > 1:
		return fmt.Errorf("give one member name, after the flags (`monokube etcd remove [--data-dir DIR] NAME`); got %q", c.Args().Slice())
	}
	l, err := serverLayout(c)
	if err != nil {
		return err
	}
	cluster, err := localEtcd(l)
	if err != nil {
		return err
	}
	defer cluster.Close()
	m, err := cluster.Remove(c.Context, c.Args().First())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "removed etcd member %s (%x). Its server stops, moves its etcd data aside and exits; "+
		"to join that machine again, create a server token here (`monokube token create --role server`) and start it with --server and --token-file.\n", m.Name, m.ID)
	return err
}

func listMembers(c *cli.Context, stdout io.Writer) error {
	out, err := outputFormat(c, "table", "json")
	if err != nil {
		return err
	}
	l, err := serverLayout(c)
	if err != nil {
		return err
	}
	cluster, err := localEtcd(l)
	if err != nil {
		return err
	}
	defer cluster.Close()
	st, err := cluster.Status(c.Context)
	if err != nil {
		return fmt.Errorf("%w: is this server's monokube running?", err)
	}
	if out == "json" {
		return printData(stdout, out, st)
	}
	if err := membersTable(stdout, st); err != nil {
		return err
	}
	return balancerLine(stdout, l)
}

// balancerLine says which member this server's apiserver uses now, from
// its etcd balancer's state file (none: a server that has not started
// since it had one).
func balancerLine(w io.Writer, l datadir.Layout) error {
	lb, err := apilb.LoadState(server.EtcdBalancerFile(l))
	if err != nil || lb.Current == "" {
		return nil
	}
	used := "the member at " + lb.Current
	if lb.Current == etcd.LocalAddr() {
		used = "this server's own member"
	}
	_, err = fmt.Fprintf(w, "\nthis server's apiserver reaches etcd through %s (%d members known), now %s\n", lb.Listen, len(lb.Servers), used)
	return err
}

func membersTable(w io.Writer, st []etcd.MemberStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tROLE\tHEALTH\tLEADER\tPEER URLS\tCLIENT URLS")
	for _, m := range st {
		role, health, leader := "voter", "healthy", ""
		if m.Learner {
			role = "learner"
		}
		if !m.Healthy {
			health = "unreachable: " + m.Error
		}
		if m.Leader {
			leader = "*"
		}
		fmt.Fprintf(tw, "%s\t%x\t%s\t%s\t%s\t%s\t%s\n", orDash(m.Name), m.ID, role, health, leader,
			strings.Join(m.PeerURLs, ","), orDash(strings.Join(m.ClientURLs, ",")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
