package agent

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/node"
)

// balancer returns the node's apiserver load balancer, after pointing the
// node's kubeconfigs at it: a node joined before it had one (or before
// the cluster had a second server) moves to it at this start.
func balancer(l datadir.Layout, creds node.Creds, j joined, log *slog.Logger) (*apilb.LB, error) {
	u, err := url.Parse(j.Server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("the joined server %q in %s is not a URL (remove the file to join again)", j.Server, clusterFile(l))
	}
	joinedAddr := u.Host
	if u.Port() == "" {
		joinedAddr = net.JoinHostPort(u.Hostname(), "443")
	}
	ca := l.AgentTLSFile("server-ca.crt")
	if !fsutil.Exists(ca) {
		return nil, fmt.Errorf("the cluster's server CA %s is missing: join again to restore it", ca)
	}
	for _, kc := range []string{creds.BootstrapKubeconfig, creds.KubeletKubeconfig} {
		if err := pointAt(kc, apilb.URL(apilb.NodeAddr()), ca, log); err != nil {
			return nil, err
		}
	}
	return apilb.New(apilb.Config{
		Listen: apilb.NodeAddr(), Joined: joinedAddr, StateFile: node.ServersFile(l),
		ServerCAFile: ca, Kubeconfig: creds.KubeletKubeconfig,
	}, log.With("component", "apiserver-lb")), nil
}

// pointAt sets every cluster's server in the kubeconfig at path to url
// and its CA to the file caFile (which the agent keeps current during a CA
// rotation, and clients read again when it changes); a missing file (not
// written yet, or removed after the bootstrap) is left alone.
func pointAt(path, url, caFile string, log *slog.Logger) error {
	if path == "" || !fsutil.Exists(path) {
		return nil
	}
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return fmt.Errorf("read %s (join again to replace it): %w", path, err)
	}
	changed := false
	for _, c := range kc.Clusters {
		if c.Server != url {
			log.Info("pointing the node's kubeconfig at its apiserver load balancer", "file", path, "was", c.Server, "now", url)
			c.Server, changed = url, true
		}
		if c.CertificateAuthority != caFile || c.CertificateAuthorityData != nil {
			log.Info("pointing the node's kubeconfig at the cluster's server CA file", "file", path, "ca", caFile)
			c.CertificateAuthority, c.CertificateAuthorityData, changed = caFile, nil, true
		}
	}
	if !changed {
		return nil
	}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	return fsutil.WriteFile(path, data, 0o600)
}
