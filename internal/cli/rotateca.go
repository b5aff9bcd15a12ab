package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/agent"
	"github.com/monokube/monokube/internal/carotate"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/server"
)

// rotateCACommand is `monokube certificate rotate-ca`.
func rotateCACommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name: "rotate-ca",
		Usage: "replace the cluster's CAs without downtime (run on any server): a new CA is trusted beside the old one " +
			"on every node, then signs every certificate in its place; the old one stays trusted until --retire",
		Flags: append(dirFlags("server"),
			&cli.StringSliceFlag{Name: "ca", Usage: "only these CAs (default: all): " + strings.Join(identity.RotatableCAs(), ", ")},
			&cli.StringFlag{Name: "import", Usage: "a directory with your own CAs as <name>-ca.crt and <name>-ca.key " +
				"(server-ca.crt, client-ca.key, …), used instead of new ones monokube makes"},
			&cli.BoolFlag{Name: "retire", Usage: "stop trusting the CAs a rotation replaced (after it finished); retiring the etcd CA " +
				"restarts the servers one at a time (etcd reads the CAs it trusts at start; pods keep running)"},
			&cli.DurationFlag{Name: "retire-after", Usage: "have the server retire the old CAs by itself this long after the rotation " +
				"(default: they stay trusted until --retire); give it the time every copy of the admin kubeconfig and every join token needs to be replaced"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "how long to wait for the nodes at each step"}),
		Action: func(c *cli.Context) error { return rotateCA(c, stdout) },
	}
}

// caStep is one step of a CA rotation: a change of the CA files, which
// every server takes, then the wait until every server and every agent
// has followed it.
type caStep struct {
	name   string
	change func(datadir.Layout) error
}

// rotateCA runs a rotation's steps from the server of the data dir.
func rotateCA(c *cli.Context, stdout io.Writer) error {
	l, names, err := rotateCAInputs(c)
	if err != nil {
		return err
	}
	client, _, err := adminClient(c)
	if err != nil {
		return err
	}
	if err := checkNotRotated(c, l, client, names); err != nil {
		return err
	}
	var steps []caStep
	if c.Bool("retire") {
		steps = []caStep{{"retire: only the new CAs are trusted", func(l datadir.Layout) error { return identity.RetireCAs(l, names) }}}
	} else {
		imported, err := importedCAs(c, names)
		if err != nil {
			return err
		}
		now := time.Now()
		steps = []caStep{
			{"trust: every node trusts the new CAs beside the old", func(l datadir.Layout) error { return identity.StartCARotation(l, names, imported, now) }},
			{"switch: the new CAs sign every certificate", func(l datadir.Layout) error { return identity.SwitchCAs(l, names) }},
		}
	}
	servers := func(ctx context.Context) ([]string, error) { return serverNames(ctx, c) }
	start := time.Now()
	for _, s := range steps {
		step := strings.SplitN(s.name, ":", 2)[0]
		if err := settle(c, stdout, l, step, names); err != nil {
			return err
		}
		if err := runCAStep(c.Context, l, client, servers, step, s.change, c.Duration("timeout")); err != nil {
			return fmt.Errorf("step %s: %w", step, err)
		}
		fmt.Fprintf(stdout, "%s (%s)\n", s.name, time.Since(start).Round(time.Millisecond))
	}
	if err := carotate.Finish(c.Context, client, l); err != nil {
		return err
	}
	if err := refreshIdentity(c, client, stdout); err != nil {
		return err
	}
	if c.Bool("retire") {
		fmt.Fprintf(stdout, "retired the old CAs of %s: join tokens that pin them are refused; make new ones with `monokube token create`\n", strings.Join(names, ", "))
		if slices.Contains(names, identity.CAEtcd) {
			fmt.Fprintln(stdout, "every server restarted, one at a time, to stop trusting the old etcd CA")
		}
		return nil
	}
	until := "`monokube certificate rotate-ca --retire`"
	if d := c.Duration("retire-after"); d > 0 {
		at := time.Now().Add(max(d, carotate.TrustSettle)) // clients must have followed
		if err := identity.ScheduleRetire(l, names, at); err != nil {
			return err
		}
		until = at.UTC().Format(time.RFC3339) + ", when this server retires them (or --retire before)"
	}
	fmt.Fprintf(stdout, "rotated the CAs of %s in %s; the old ones stay trusted until %s. "+
		"Copies of the admin kubeconfig taken before trust only the old server CA and work until then: take a new copy.\n",
		strings.Join(names, ", "), time.Since(start).Round(time.Millisecond), until)
	return nil
}

// checkNotRotated refuses a new rotation of CAs whose previous one left
// the old CA trusted, unless that rotation was cut short (running the
// command again finishes it).
func checkNotRotated(c *cli.Context, l datadir.Layout, client kubernetes.Interface, names []string) error {
	unfinished, err := carotate.Unfinished(c.Context, client)
	if err != nil {
		return err
	}
	if c.Bool("retire") {
		if unfinished != "" && unfinished != "retire" {
			// An agent that has not switched still holds certificates of the old CAs.
			return fmt.Errorf("the rotation's %s step has not reached every node: run `monokube certificate rotate-ca` again to finish it "+
				"before retiring the old CAs (a node still holding their certificates would be cut off)", unfinished)
		}
		return nil
	}
	states, err := identity.CAStates(l, names)
	if err != nil {
		return err
	}
	var switched []string
	for _, st := range states {
		if st.Stage == identity.CAStageSwitched {
			switched = append(switched, st.Name)
		}
	}
	if len(switched) == 0 {
		return nil
	}
	if unfinished != "" {
		return nil // finished by this run
	}
	return fmt.Errorf("the CAs of %s were rotated and their old ones are still trusted: retire them first (`monokube certificate rotate-ca --retire`)",
		strings.Join(switched, ", "))
}

// settle waits, before a retirement, until client-go has followed the
// steps before (carotate.Wait), saying so.
func settle(c *cli.Context, stdout io.Writer, l datadir.Layout, step string, names []string) error {
	if step != "retire" {
		return nil
	}
	wait, err := carotate.Wait(l, names, time.Now())
	if err != nil || wait <= 0 {
		return err
	}
	fmt.Fprintf(stdout, "waiting %s for every client to trust the new CAs and present its new certificate "+
		"(client-go reads a changed CA file 5 minutes after its last read)\n", wait.Round(time.Second))
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(wait):
		return nil
	}
}

// runCAStep publishes the CA files as change leaves them, then waits
// until every server has taken them and checked its leaves against them
// (carotate.Sync), and every agent reports the CAs then published.
func runCAStep(ctx context.Context, l datadir.Layout, client kubernetes.Interface, servers func(context.Context) ([]string, error),
	step string, change func(datadir.Layout) error, timeout time.Duration) error {
	hash, err := carotate.Step(ctx, client, l, step, change)
	if err != nil {
		return err
	}
	if err := carotate.Agree(ctx, client, servers, hash, step, timeout); err != nil {
		return err
	}
	want, err := publishedHash(l)
	if err != nil {
		return err
	}
	return waitAgents(ctx, client, want, timeout)
}

// rotateCAInputs checks that the data dir is a running server's and
// returns it with the CAs to rotate.
func rotateCAInputs(c *cli.Context) (datadir.Layout, []string, error) {
	l, err := serverLayout(c)
	if err != nil {
		return l, nil, err
	}
	if _, err := os.Stat(control.NewCreds(l).ServerCA.Cert()); err != nil {
		return l, nil, fmt.Errorf("no server in data dir %s: run rotate-ca on a server, as root, or give its --data-dir or --config", l.Data)
	}
	if !l.NodeRunning() {
		return l, nil, errors.New("the server is not running: start it first; rotate-ca waits for every server and agent to take each step")
	}
	names := config.SplitList(c.StringSlice("ca"))
	if len(names) == 0 {
		names = identity.RotatableCAs()
	}
	return l, names, identity.CheckCANames(names)
}

// importedCAs reads --import, if given.
func importedCAs(c *cli.Context, names []string) (map[string]*pki.KeyPair, error) {
	dir := c.String("import")
	if dir == "" {
		return nil, nil
	}
	return identity.ImportCAs(dir, names, time.Now())
}

// publishedHash is the agent.TrustHash of the CAs the server publishes.
func publishedHash(l datadir.Layout) (string, error) {
	c := control.NewCreds(l)
	var s identity.ClusterSettings
	var errs [3]error
	s.ServerCA, errs[0] = identity.PublishedBundle(c.ServerCA)
	s.ClientCA, errs[1] = os.ReadFile(c.ClientCA.Cert())
	s.KubeletServingCA, errs[2] = identity.PublishedBundle(c.KubeletServingCA)
	return agent.TrustHash(s), errors.Join(errs[:]...)
}

// waitAgents waits until every node that is no server's reports want.
func waitAgents(ctx context.Context, client kubernetes.Interface, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		var behind []string
		if err == nil {
			for _, n := range nodes.Items {
				if _, server := n.Labels[server.ControlPlaneLabel]; !server && n.Annotations[agent.TrustAnnotation] != want {
					behind = append(behind, n.Name)
				}
			}
			if len(behind) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("list the nodes: %w", err)
			}
			slices.Sort(behind)
			return fmt.Errorf("agents %s did not take the new CAs within %s: start them (an agent takes them within seconds of running), "+
				"or remove those gone for good (`monokube kubectl delete node NAME`)", strings.Join(behind, ", "), timeout)
		case <-time.After(time.Second):
		}
	}
}
