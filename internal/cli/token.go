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
	return &cli.Command{
		Name:  "token",
		Usage: "create, list and delete join tokens (run on a server)",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create a join token and print it",
				Flags: append(dirFlags("server"),
					&cli.StringFlag{Name: "role", Value: string(join.RoleAgent), Usage: "what the token joins: agent, or server (which also joins agents)"},
					&cli.DurationFlag{Name: "ttl", Usage: "how long the token works (default 24h for an agent token, 1h for a server token); 0 never expires (agent tokens only)"},
					&cli.StringFlag{Name: "description", Usage: "what the token is for, shown by token list"}),
				Action: func(c *cli.Context) error { return createToken(c, stdout) },
			},
			{
				Name:   "list",
				Usage:  "list join tokens (ids, not secrets)",
				Flags:  dirFlags("server"),
				Action: func(c *cli.Context) error { return listTokens(c, stdout) },
			},
			{
				Name:      "delete",
				Usage:     "delete join tokens; nodes that joined with them keep working",
				ArgsUsage: "ID...",
				Flags:     dirFlags("server"),
				Action:    deleteTokens,
			},
		},
	}
}

// dirFlags find a node's data dir for the commands that run beside it
// (token and etcd on a server, servers on an agent): --data-dir, else its
// config file's. role names the node in the help.
func dirFlags(role string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Value: config.DefaultConfigFile, EnvVars: env("config"),
			Usage: "the " + role + "'s config file, for its data-dir"},
		&cli.StringFlag{Name: "data-dir", EnvVars: env("data-dir"),
			Usage: "the " + role + "'s data dir (default: from the config file, else " + config.DefaultDataDir + ")"},
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
	// secrets-encrypt rewrites every Secret: client-go's default 5
	// requests/s would make that 200 s for 1,000 of them.
	rc.QPS, rc.Burst = 200, 400
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("admin client: %w", err)
	}
	return client, id, nil
}

func createToken(c *cli.Context, stdout io.Writer) error {
	spec, err := tokenSpec(c)
	if err != nil {
		return err
	}
	client, id, err := adminClient(c)
	if err != nil {
		return err
	}
	t, err := join.NewToken(id.CAs.Server.Cert)
	if err != nil {
		return err
	}
	if err := join.CreateSecret(c.Context, client, t, spec, time.Now()); err != nil {
		return err
	}
	if spec.Role == join.RoleServer {
		if err := publishIdentity(c, client, id, t); err != nil {
			_ = join.Delete(c.Context, client, t.ID) // no server token without the identity it is for
			return err
		}
	}
	_, err = fmt.Fprintln(stdout, t.String())
	return err
}

// publishIdentity lets server token t, alone, read the cluster identity.
func publishIdentity(c *cli.Context, client kubernetes.Interface, id *identity.Identity, t join.Token) error {
	data, err := encodedIdentity(id)
	if err != nil {
		return err
	}
	return join.PublishIdentity(c.Context, client, t, data)
}

// encodedIdentity is the cluster identity of id's data dir, as it is now,
// encoded.
func encodedIdentity(id *identity.Identity) ([]byte, error) {
	b, err := id.Bundle()
	if err != nil {
		return nil, err
	}
	return b.Encode()
}

// refreshIdentity gives the live server tokens the identity as a key
// rotation left it in the server's data dir.
func refreshIdentity(c *cli.Context, client kubernetes.Interface, stdout io.Writer) error {
	l, err := serverLayout(c)
	if err != nil {
		return err
	}
	id, err := identity.Load(l)
	if err != nil {
		return err
	}
	data, err := encodedIdentity(id)
	if err != nil {
		return err
	}
	n, err := join.RefreshIdentities(c.Context, client, data)
	if n > 0 {
		fmt.Fprintf(stdout, "gave the new keys to %d live server tokens\n", n)
	}
	return err
}

// tokenSpec reads and checks --role, --ttl and --description.
func tokenSpec(c *cli.Context) (join.Spec, error) {
	role, err := join.ParseRole(c.String("role"))
	if err != nil {
		return join.Spec{}, err
	}
	ttl := role.DefaultTTL()
	if c.IsSet("ttl") {
		ttl = c.Duration("ttl")
	}
	if err := role.CheckTTL(ttl); err != nil {
		return join.Spec{}, err
	}
	return join.Spec{Role: role, TTL: ttl, Description: c.String("description")}, nil
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
	fmt.Fprintln(w, "ID\tROLE\tEXPIRES\tDESCRIPTION")
	for _, i := range infos {
		exp := i.Expires
		if i.Expired {
			exp += " (expired)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", i.ID, i.Role, exp, i.Description)
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
