package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/server"
	"github.com/monokube/monokube/internal/snapshot"
)

// etcdSnapshotCommand takes, lists, prunes and checks a server's etcd
// snapshots (package snapshot), with the server's own credentials.
func etcdSnapshotCommand(stdout io.Writer) *cli.Command {
	flags := func(more ...cli.Flag) []cli.Flag {
		return append(append(dirFlags("server"), &cli.StringFlag{Name: "etcd-snapshot-dir", EnvVars: env("etcd-snapshot-dir"),
			Usage: "the server's snapshot dir (default: from the config file, else <data-dir>/server/db/snapshots)"}), more...)
	}
	return &cli.Command{
		Name:  "etcd-snapshot",
		Usage: "take, list, prune and verify etcd snapshots (run on a server); restore with `monokube server --cluster-reset-restore-path FILE`",
		Subcommands: []*cli.Command{{
			Name: "save", Usage: "take a snapshot now (kind on-demand) and print its file",
			Flags:  flags(&cli.StringFlag{Name: "name", Value: server.OnDemandPrefix, Usage: "name prefix; the file is NAME-NODE-UNIXTIME" + snapshot.Ext}),
			Action: func(c *cli.Context) error { return saveSnapshot(c, stdout) },
		}, {
			Name: "ls", Aliases: []string{"list"}, Usage: "list the snapshots: name, kind, node, time, size, etcd revision, status",
			Flags:  flags(outputFlag("table", "json", "yaml")),
			Action: func(c *cli.Context) error { return listSnapshots(c, stdout) },
		}, {
			Name: "delete", Usage: "delete snapshots by name", ArgsUsage: "NAME...",
			Flags:  flags(),
			Action: func(c *cli.Context) error { return deleteSnapshots(c, stdout) },
		}, {
			Name: "prune", Usage: "delete all but the newest good snapshots of each kind (scheduled, on-demand, pre-upgrade)",
			Flags: flags(
				&cli.IntFlag{Name: "retention", Value: 5, Usage: "good snapshots kept of each kind"},
				&cli.StringFlag{Name: "kind", Value: "all", Usage: "scheduled, on-demand, pre-upgrade or all"}),
			Action: func(c *cli.Context) error { return pruneSnapshots(c, stdout) },
		}, {
			Name: "verify", Usage: "check every byte of a snapshot file without restoring it (and, with a recovery key, that the key opens it)", ArgsUsage: "FILE",
			Flags:  flags(&cli.StringFlag{Name: "recovery-key-file", Usage: "check that the key in this file opens the snapshot (default: this server's key, if any)"}),
			Action: func(c *cli.Context) error { return verifySnapshot(c, stdout) },
		}, {
			Name: "recovery-key", Usage: "print the cluster's recovery key, which opens the identity inside every snapshot (keep a copy away from the cluster)",
			Flags:  dirFlags("server"),
			Action: func(c *cli.Context) error { return printRecoveryKey(c, stdout) },
		}},
	}
}

// snapshotDir is the server's snapshot dir and data dir, from the flags
// and its config file.
func snapshotDir(c *cli.Context) (snapshot.Dir, datadir.Layout, error) {
	nf, err := nodeFiles(c, "")
	if err != nil {
		return snapshot.Dir{}, datadir.Layout{}, err
	}
	dir := config.SnapshotDir(nf.DataDir)
	switch {
	case c.IsSet("etcd-snapshot-dir"):
		dir = c.String("etcd-snapshot-dir")
	case nf.EtcdSnapshotDir != "":
		dir = nf.EtcdSnapshotDir
	}
	return snapshot.Dir{Path: dir}, datadir.Layout{Data: nf.DataDir}, nil
}

func saveSnapshot(c *cli.Context, stdout io.Writer) error {
	if c.NArg() > 0 {
		return fmt.Errorf("save takes no arguments (got %q): give a name with --name", c.Args().Slice())
	}
	d, l, err := snapshotDir(c)
	if err != nil {
		return err
	}
	e, err := server.TakeSnapshot(c.Context, l, d.Path, snapshot.OnDemand, c.String("name"))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, e.Path)
	return err
}

func listSnapshots(c *cli.Context, stdout io.Writer) error {
	out, err := outputFormat(c, "table", "json", "yaml")
	if err != nil {
		return err
	}
	d, _, err := snapshotDir(c)
	if err != nil {
		return err
	}
	list, err := d.List()
	if err != nil {
		return err
	}
	if out != "table" {
		return printData(stdout, out, list)
	}
	return snapshotTable(stdout, d, list)
}

// snapshotTable lists the snapshots, then counts them per kind and says
// which of them anything prunes by itself.
func snapshotTable(w io.Writer, d snapshot.Dir, list []snapshot.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tNODE\tCREATED\tSIZE\tREVISION\tSTATUS")
	counts := map[snapshot.Kind]int{}
	for _, e := range list {
		counts[e.Kind]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Name, orDash(string(e.Kind)), orDash(e.Node),
			e.Created.Local().Format(time.DateTime), size(e.Size), e.Revision, e.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d snapshot(s) in %s: %d scheduled (the server keeps --etcd-snapshot-retention of them), "+
		"%d on-demand and %d pre-upgrade (kept until `monokube etcd-snapshot prune` or delete)\n",
		len(list), d.Path, counts[snapshot.Scheduled], counts[snapshot.OnDemand], counts[snapshot.PreUpgrade])
	return err
}

// size is n bytes for people.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGi", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMi", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1fKi", float64(n)/(1<<10))
}

func deleteSnapshots(c *cli.Context, stdout io.Writer) error {
	if c.NArg() == 0 {
		return errors.New("give the names of the snapshots to delete (`monokube etcd-snapshot ls` lists them)")
	}
	d, _, err := snapshotDir(c)
	if err != nil {
		return err
	}
	deleted, err := d.Delete(c.Args().Slice()...)
	for _, n := range deleted {
		fmt.Fprintf(stdout, "deleted %s\n", n)
	}
	return err
}

func pruneSnapshots(c *cli.Context, stdout io.Writer) error {
	keep := c.Int("retention")
	if keep < 1 {
		return fmt.Errorf("--retention %d: keep at least 1 (delete the last ones by name)", keep)
	}
	kinds := snapshot.Kinds()
	if k := snapshot.Kind(c.String("kind")); k != "all" {
		if !slices.Contains(snapshot.Kinds(), k) {
			return fmt.Errorf("--kind %q: want scheduled, on-demand, pre-upgrade or all", k)
		}
		kinds = []snapshot.Kind{k}
	}
	d, _, err := snapshotDir(c)
	if err != nil {
		return err
	}
	for _, k := range kinds {
		deleted, err := d.Prune(k, "", keep)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: kept the newest %d good, deleted %d%s\n", k, keep, len(deleted), listed(deleted))
	}
	return nil
}

// listed is names in parentheses, or nothing.
func listed(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}

func verifySnapshot(c *cli.Context, stdout io.Writer) error {
	if c.NArg() != 1 {
		return errors.New("give one snapshot file: `monokube etcd-snapshot verify FILE`")
	}
	_, l, err := snapshotDir(c)
	if err != nil {
		return err
	}
	key, err := verifyKey(c, l)
	if err != nil {
		return err
	}
	// Checking needs a scratch copy of etcd's data: in the temp dir
	// ($TMPDIR), so verify works on a machine that is no server too.
	m, err := snapshot.Verify(c.Args().First(), os.TempDir(), key)
	if err != nil {
		return err
	}
	opened := "not checked (no recovery key here: give --recovery-key-file)"
	if key != nil {
		opened = "opens with recovery key " + key.ID()
	}
	_, err = fmt.Fprintf(stdout, "ok: %s\n  kind %s, node %s, taken %s, etcd revision %d, %d keys\n  monokube %s, Kubernetes %s, cluster %.12s\n  identity: %s\n",
		c.Args().First(), m.Kind, m.Node, m.Created.Local().Format(time.DateTime), m.Revision, m.Keys, m.Monokube, m.Kubernetes, m.Cluster, opened)
	return err
}

// verifyKey is the key of --recovery-key-file, else the server's, else
// none (a machine that is no server).
func verifyKey(c *cli.Context, l datadir.Layout) (*snapshot.Key, error) {
	if path := c.String("recovery-key-file"); path != "" {
		k, err := snapshot.LoadKey(path)
		return &k, err
	}
	path := control.NewCreds(l).RecoveryKey
	if !fsutil.Exists(path) {
		return nil, nil
	}
	k, err := snapshot.LoadKey(path)
	if err != nil {
		return nil, fmt.Errorf("%w (the server's key is root's: run this as root)", err)
	}
	return &k, nil
}

func printRecoveryKey(c *cli.Context, stdout io.Writer) error {
	l, err := serverLayout(c)
	if err != nil {
		return err
	}
	k, err := snapshot.LoadKey(control.NewCreds(l).RecoveryKey)
	if err != nil {
		return fmt.Errorf("%w: run this as root on a server of the cluster (or give its --data-dir or --config)", err)
	}
	_, err = fmt.Fprintln(stdout, k)
	return err
}
