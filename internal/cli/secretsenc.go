package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/secretsenc"
)

// secretsEncryptCommand rotates and shows the key that encrypts Secrets.
func secretsEncryptCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "secrets-encrypt",
		Usage: "the key that encrypts Secrets in etcd (run on a server)",
		Subcommands: []*cli.Command{{
			Name: "rotate-keys",
			Usage: "add a new key, make it encrypt, re-encrypt every Secret and drop the old key, " +
				"waiting at each stage until every server applied it; run again after a failure, it goes on where it stopped",
			Flags: append(dirFlags("server"),
				&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "how long to wait for the servers at each stage"}),
			Action: func(c *cli.Context) error { return rotateKeys(c, stdout) },
		}, {
			Name:   "status",
			Usage:  "the rotation stage, the keys and each server's applied config",
			Flags:  append(dirFlags("server"), outputFlag("table", "json")),
			Action: func(c *cli.Context) error { return encryptionStatus(c, stdout) },
		}},
	}
}

// rotateKeys is `secrets-encrypt rotate-keys`.
func rotateKeys(c *cli.Context, stdout io.Writer) error {
	client, id, err := adminClient(c)
	if err != nil {
		return err
	}
	servers := func(ctx context.Context) ([]string, error) { return serverNames(ctx, c) }
	r := &secretsenc.Rotation{Client: client, File: id.Creds.EncryptionConfig, Servers: servers,
		Wait: c.Duration("timeout"), Out: stdout, Now: time.Now}
	start := time.Now()
	if err := r.Run(c.Context); err != nil {
		return err
	}
	if err := refreshIdentity(c, client, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rotated the Secrets encryption key in %s: every server applied it and etcd holds Secrets under the new key only\n",
		time.Since(start).Round(time.Millisecond))
	return nil
}

// serverNames are the names of the cluster's etcd members: every server,
// stopped ones too.
func serverNames(ctx context.Context, c *cli.Context) ([]string, error) {
	l, err := serverLayout(c)
	if err != nil {
		return nil, err
	}
	cluster, err := localEtcd(l)
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	return cluster.Names(ctx)
}

// statusInputs is what a rotation's status command reads: its output
// format, an admin client, the server's identity and every server's name.
func statusInputs(c *cli.Context) (string, kubernetes.Interface, *identity.Identity, []string, error) {
	out, err := outputFormat(c, "table", "json")
	if err != nil {
		return "", nil, nil, nil, err
	}
	client, id, err := adminClient(c)
	if err != nil {
		return "", nil, nil, nil, err
	}
	servers, err := serverNames(c.Context, c)
	return out, client, id, servers, err
}

// encryptionStatus is `secrets-encrypt status`.
func encryptionStatus(c *cli.Context, stdout io.Writer) error {
	out, client, id, servers, err := statusInputs(c)
	if err != nil {
		return err
	}
	st, err := secretsenc.ReadStatus(c.Context, client, id.Creds.EncryptionConfig, servers)
	if err != nil {
		return err
	}
	if out == "json" {
		return printData(stdout, out, st)
	}
	fmt.Fprintf(stdout, "stage: %s\nkeys: %s (the first encrypts)\n", st.Stage, strings.Join(st.Keys, ", "))
	return reportsTable(stdout, st.Hash, st.Servers, st.Agree)
}
