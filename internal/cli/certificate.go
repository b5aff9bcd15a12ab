package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/agent"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/pki"
)

// certificateCommand looks at the certificates of this node, server or
// agent.
func certificateCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "certificate",
		Usage: "look at and rotate this node's certificates (run on a server or an agent)",
		Subcommands: []*cli.Command{{
			Name: "check",
			Usage: "list every certificate of this node: file, subject, usages, issuer, expiry, days left, status " +
				"(WARNING within 30 days, past every renewal's time; EXPIRED after); exits non-zero if one has expired",
			Flags: append(dirFlags("node"),
				outputFlag("table", "json")),
			Action: func(c *cli.Context) error { return checkCertificates(c, stdout) },
		}, {
			Name: "rotate",
			Usage: "re-issue this node's certificates now, each with a new key: on a server while it runs " +
				"(or at its next start), its components pick them up without a restart; on an agent the kubelet's, " +
				"which it uses from its next start",
			Flags: append(dirFlags("node"),
				&cli.StringSliceFlag{Name: "service", Usage: "only these services' certificates (default: all): " +
					strings.Join(identity.Services(), ", ")},
				&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "how long to wait for the running server"}),
			Action: func(c *cli.Context) error { return rotateCertificates(c, stdout) },
		}, rotateCACommand(stdout)},
	}
}

// rotateCertificates asks the server of the data dir to re-issue leaves
// (identity.RequestRotate) and, if it runs, waits for its answer; on an
// agent it has the kubelet's certificates re-issued.
func rotateCertificates(c *cli.Context, stdout io.Writer) error {
	nf, err := nodeFiles(c, "")
	if err != nil {
		return err
	}
	l := datadir.Layout{Data: nf.DataDir}
	services := config.SplitList(c.StringSlice("service"))
	switch {
	case fsutil.Exists(control.NewCreds(l).ServerCA.Cert()):
		return rotateServer(c, stdout, l, services)
	case fsutil.Exists(node.NewAgentCreds(l).KubeletKubeconfig):
		return rotateAgent(c, stdout, l, services)
	}
	return fmt.Errorf("no server or agent in data dir %s: run this on a node, as root, or give its --data-dir or --config", nf.DataDir)
}

// rotateServer asks the server on l to re-issue the leaves of services.
func rotateServer(c *cli.Context, stdout io.Writer, l datadir.Layout, services []string) error {
	req, err := identity.RequestRotate(l, services)
	if err != nil {
		return err
	}
	if !l.NodeRunning() {
		fmt.Fprintf(stdout, "no server runs on %s: it re-issues the certificates of %s at its next start\n", l.Data, strings.Join(req.Services, ", "))
		return nil
	}
	res, err := waitRotated(c.Context, l, req.ID, c.Duration("timeout"))
	if err != nil {
		return err
	}
	for _, f := range res.Issued {
		fmt.Fprintln(stdout, "issued", f)
	}
	fmt.Fprintf(stdout, "%d certificates re-issued; the components use them without a restart. "+
		"Copies of the admin kubeconfig taken before keep working until their certificate expires: take a new copy.\n", len(res.Issued))
	return nil
}

// rotateAgent re-issues an agent's kubelet certificates, the only ones it
// holds (kube-proxy and the overlay use the kubelet's).
func rotateAgent(c *cli.Context, stdout io.Writer, l datadir.Layout, services []string) error {
	for _, s := range services {
		if s != identity.ServiceKubelet {
			return fmt.Errorf("an agent holds only the kubelet's certificates (kube-proxy and the overlay use them): give --service kubelet, or none")
		}
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	files, err := agent.RotateKubelet(ctx, l, nil)
	for _, f := range files {
		fmt.Fprintln(stdout, "issued", f)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "the kubelet's certificates were re-issued; kube-proxy and the overlay use the new client certificate "+
		"within minutes, the kubelet at its next start: restart the agent (systemctl restart monokube-agent; pods keep running)")
	return nil
}

// waitRotated waits for the running server's answer to request id.
func waitRotated(ctx context.Context, l datadir.Layout, id string, timeout time.Duration) (identity.RotateResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		res, ok, err := identity.ReadRotateResult(l, id)
		switch {
		case err != nil:
			return res, err
		case ok && res.Error != "":
			return res, fmt.Errorf("the server could not re-issue the certificates: %s", res.Error)
		case ok:
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("the server on %s did not answer within %s: the request stays, and the server "+
				"carries it out when it next checks or starts (its log says so)", l.Data, timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func checkCertificates(c *cli.Context, stdout io.Writer) error {
	out, err := outputFormat(c, "table", "json")
	if err != nil {
		return err
	}
	nf, err := nodeFiles(c, "")
	if err != nil {
		return err
	}
	certs, err := nodeCertificates(datadir.Layout{Data: nf.DataDir}, nf.WriteKubeconfig, time.Now())
	if err != nil {
		return err
	}
	if len(certs) == 0 {
		return fmt.Errorf("no certificates in data dir %s: run this on a node, as root, or give its --data-dir or --config", nf.DataDir)
	}
	if out == "json" {
		err = printData(stdout, out, certs)
	} else {
		err = certificateTable(stdout, certs)
	}
	if err != nil {
		return err
	}
	return expired(certs)
}

// nodeCertificates are the certificates a node holds: PEM files in its
// TLS dirs, the kubelet's current rotated ones, and those embedded in
// its kubeconfigs (and the admin one at adminKubeconfig, if there).
func nodeCertificates(l datadir.Layout, adminKubeconfig string, now time.Time) ([]pki.CertInfo, error) {
	var out []pki.CertInfo
	for _, dir := range []string{l.TLS(), l.AgentTLS(), filepath.Join(l.KubeletRoot(), "pki")} {
		files, err := certFiles(dir)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read %s (run this as root): %w", f, err)
			}
			certs, err := pki.InspectPEM(f, data, now)
			if err != nil {
				return nil, err
			}
			out = append(out, certs...)
		}
	}
	kcs, err := kubeconfigCerts(l, adminKubeconfig, now)
	return append(out, kcs...), err
}

// certFiles are the certificate files under dir: *.crt, and of the
// kubelet's rotated *.pem only the current ones (older ones stay behind
// on disk, expired, and are not used).
func certFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case strings.HasSuffix(path, ".crt") && !d.IsDir(),
			strings.HasSuffix(path, "-current.pem"):
			out = append(out, path)
		}
		return nil
	})
	return out, err
}

// kubeconfigCerts are the client certificates embedded in the node's
// kubeconfigs.
func kubeconfigCerts(l datadir.Layout, admin string, now time.Time) ([]pki.CertInfo, error) {
	files, _ := filepath.Glob(filepath.Join(l.Cred(), "*.kubeconfig"))
	agent, _ := filepath.Glob(filepath.Join(l.AgentEtc(), "*.kubeconfig"))
	files = append(files, agent...)
	if _, err := os.Stat(admin); err == nil {
		files = append(files, admin)
	}
	var out []pki.CertInfo
	for _, f := range files {
		cfg, err := clientcmd.LoadFromFile(f)
		if err != nil {
			return nil, fmt.Errorf("read kubeconfig %s (run this as root): %w", f, err)
		}
		for _, name := range slices.Sorted(maps.Keys(cfg.AuthInfos)) {
			certs, err := pki.InspectPEM(f, cfg.AuthInfos[name].ClientCertificateData, now)
			if err != nil {
				return nil, err
			}
			out = append(out, certs...)
		}
	}
	return out, nil
}

func certificateTable(w io.Writer, certs []pki.CertInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSUBJECT\tUSAGES\tISSUER\tNOT AFTER\tDAYS LEFT\tSTATUS")
	for _, c := range certs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.File, c.Subject, strings.Join(c.Usages, ","), c.Issuer,
			c.NotAfter.Format(time.DateOnly), c.DaysLeft, c.Status)
	}
	return tw.Flush()
}

// expired is an error naming the expired certificates, if any.
func expired(certs []pki.CertInfo) error {
	var gone []string
	for _, c := range certs {
		if c.Status == pki.StatusExpired {
			gone = append(gone, c.File+" ("+c.Subject+")")
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return fmt.Errorf("%d certificate(s) expired: %s. A node re-issues its leaf certificates when monokube starts: restart it on this node (systemctl restart monokube)",
		len(gone), strings.Join(gone, ", "))
}
