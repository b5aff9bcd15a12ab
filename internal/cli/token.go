package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/join"
)

// tokenCommand manages join tokens on a server, as the cluster admin.
func tokenCommand(stdout io.Writer) *cli.Command {
	dataDir := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "config", Value: config.DefaultConfigFile, EnvVars: env("config"),
				Usage: "the server's config file, for its data-dir"},
			&cli.StringFlag{Name: "data-dir", EnvVars: env("data-dir"),
				Usage: "the server's data dir (default: from the config file, else " + config.DefaultDataDir + ")"},
		}
	}
	return &cli.Command{
		Name:  "token",
		Usage: "create, list and delete join tokens (run on a server)",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create a join token and print it",
				Flags: append(dataDir(),
					&cli.DurationFlag{Name: "ttl", Value: 24 * time.Hour, Usage: "how long the token works; 0 never expires"},
					&cli.StringFlag{Name: "description", Usage: "what the token is for, shown by token list"}),
				Action: func(c *cli.Context) error { return createToken(c, stdout) },
			},
			{
				Name:   "list",
				Usage:  "list join tokens (ids, not secrets)",
				Flags:  dataDir(),
				Action: func(c *cli.Context) error { return listTokens(c, stdout) },
			},
			{
				Name:      "delete",
				Usage:     "delete join tokens; nodes that joined with them keep working",
				ArgsUsage: "ID...",
				Flags:     dataDir(),
				Action:    deleteTokens,
			},
		},
	}
}

// adminClient talks to the server whose data dir is given, as admin, and
// returns that server's identity.
func adminClient(c *cli.Context) (kubernetes.Interface, *identity.Identity, error) {
	nf, err := nodeFiles(c, "")
	if err != nil {
		return nil, nil, err
	}
	id, err := identity.Load(datadir.Layout{Data: nf.DataDir})
	if err != nil {
		return nil, nil, fmt.Errorf("read the cluster identity in data dir %s (run this on a server, or give its --data-dir or --config): %w", nf.DataDir, err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", id.Creds.AdminKubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("no admin credentials in data dir %s (%w): run this on a server, or give its --data-dir or --config", nf.DataDir, err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("admin client: %w", err)
	}
	return client, id, nil
}

func createToken(c *cli.Context, stdout io.Writer) error {
	client, id, err := adminClient(c)
	if err != nil {
		return err
	}
	t, err := join.NewToken(id.CAs.Server.Cert)
	if err != nil {
		return err
	}
	if c.Duration("ttl") < 0 {
		return fmt.Errorf("--ttl %s is negative: give a duration such as 24h, or 0 for a token that never expires", c.Duration("ttl"))
	}
	if err := join.CreateSecret(c.Context, client, t, c.Duration("ttl"), c.String("description"), time.Now()); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, t.String())
	return err
}

func listTokens(c *cli.Context, stdout io.Writer) error {
	client, _, err := adminClient(c)
	if err != nil {
		return err
	}
	infos, err := join.List(c.Context, client, time.Now())
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tEXPIRES\tDESCRIPTION")
	for _, i := range infos {
		exp := i.Expires
		if i.Expired {
			exp += " (expired)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", i.ID, exp, i.Description)
	}
	return w.Flush()
}

func deleteTokens(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("give the ids of the tokens to delete (see monokube token list)")
	}
	client, _, err := adminClient(c)
	if err != nil {
		return err
	}
	for _, id := range c.Args().Slice() {
		if err := join.Delete(c.Context, client, id); err != nil {
			return err
		}
	}
	return nil
}
