package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/satoken"
	"github.com/monokube/monokube/internal/secretsenc"
)

// serviceAccountKeyCommand rotates and shows the key that signs service
// account tokens.
func serviceAccountKeyCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "service-account-key",
		Usage: "the key that signs service account tokens (run on a server)",
		Subcommands: []*cli.Command{{
			Name: "rotate",
			Usage: "make a new signing key: first every server trusts it, then every server signs with it; " +
				"the old key keeps verifying the tokens it signed for --keep-old; run again after a failure, it goes on where it stopped",
			Flags: append(dirFlags("server"),
				&cli.DurationFlag{Name: "keep-old", Value: 365 * 24 * time.Hour, Usage: "how long the old key still verifies " +
					"(default: the longest life of a token; pods get new tokens within 24 h, so a shorter one breaks only " +
					"long-lived tokens requested by hand)"},
				&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "how long to wait for the servers at each stage"}),
			Action: func(c *cli.Context) error { return rotateSAKey(c, stdout) },
		}, {
			Name:   "status",
			Usage:  "the rotation stage, the keys and each server's loaded keys",
			Flags:  append(dirFlags("server"), outputFlag("table", "json")),
			Action: func(c *cli.Context) error { return saKeyStatus(c, stdout) },
		}},
	}
}

// saPaths are the service-account key files of id's server.
func saPaths(id *identity.Identity) satoken.Paths {
	return satoken.Paths{Key: id.Creds.ServiceKey, Pub: id.Creds.ServicePub, EncryptionConfig: id.Creds.EncryptionConfig}
}

// rotateSAKey is `service-account-key rotate`.
func rotateSAKey(c *cli.Context, stdout io.Writer) error {
	client, id, err := adminClient(c)
	if err != nil {
		return err
	}
	r := &satoken.Rotation{Client: client, Paths: saPaths(id), KeepOld: c.Duration("keep-old"), Wait: c.Duration("timeout"),
		Servers: func(ctx context.Context) ([]string, error) { return serverNames(ctx, c) }, Out: stdout, Now: time.Now}
	start := time.Now()
	if err := r.Run(c.Context); err != nil {
		return err
	}
	if err := refreshIdentity(c, client, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rotated the service-account signing key in %s: every server signs with the new key; "+
		"the old one verifies until %s\n", time.Since(start).Round(time.Millisecond), time.Now().Add(r.KeepOld).UTC().Format(time.RFC3339))
	return nil
}

// saKeyStatus is `service-account-key status`.
func saKeyStatus(c *cli.Context, stdout io.Writer) error {
	out, client, id, servers, err := statusInputs(c)
	if err != nil {
		return err
	}
	st, err := satoken.ReadStatus(c.Context, client, saPaths(id), servers)
	if err != nil {
		return err
	}
	if out == "json" {
		return printData(stdout, out, st)
	}
	fmt.Fprintf(stdout, "stage: %s\nsigning key: %s\n", st.Stage, st.Signing)
	for _, v := range st.Verify {
		until := "no end"
		if !v.RetireAfter.IsZero() {
			until = "until " + v.RetireAfter.Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "verifying key: %s (%s)\n", v.ID, until)
	}
	return reportsTable(stdout, st.Hash, st.Servers, st.Agree)
}

// reportsTable prints each server's report against the hash it should
// have applied, and whether all did.
func reportsTable(w io.Writer, want string, servers map[string]secretsenc.Report, agree bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tAPPLIED\tKEYS\tREPORTED")
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		r := servers[name]
		applied := "(no report)"
		switch {
		case r.Applied == want:
			applied = short(r.Applied) + " (current)"
		case r.Applied != "":
			applied = short(r.Applied)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, applied, strings.Join(shortAll(r.Keys), ","), r.Time.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if agree {
		fmt.Fprintln(w, "every server applied the current state")
	} else {
		fmt.Fprintln(w, "not every server applied the current state yet (a rotation in progress, or a server down)")
	}
	return nil
}

// short cuts a hash or key ID to what tells them apart on a screen.
func short(s string) string {
	const keep = 19 // "sha256:" and 12 hex digits
	if len(s) <= keep {
		return s
	}
	return s[:keep] + "…"
}

// shortAll is short of each of ss.
func shortAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = short(s)
	}
	return out
}
