package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/pki"
)

// writeKubeconfigs renders the components' kubeconfigs and the admin one,
// which is also copied to --write-kubeconfig with --write-kubeconfig-mode.
func writeKubeconfigs(cfg *config.Server, c control.Creds) error {
	caPEM, err := os.ReadFile(c.ServerCA.Cert())
	if err != nil {
		return fmt.Errorf("read server CA: %w", err)
	}
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.HTTPSPort))
	for _, k := range []struct {
		path  string
		files pki.Files
		mode  os.FileMode
	}{
		{c.AdminKubeconfig, c.Admin, 0o600},
		{c.CMKubeconfig, c.ControllerManager, 0o600},
		{c.SchedulerKubeconfig, c.Scheduler, 0o600},
		{cfg.WriteKubeconfig, c.Admin, cfg.WriteKubeconfigMode},
	} {
		if err := writeKubeconfig(k.path, url, caPEM, k.files, k.mode); err != nil {
			return err
		}
	}
	return nil
}

// writeNodeCreds gives the server's own node its kubeconfigs and the CA
// of the clients its kubelet accepts.
func writeNodeCreds(cfg *config.Server, c control.Creds, nc node.Creds) error {
	caPEM, err := os.ReadFile(c.ServerCA.Cert())
	if err != nil {
		return fmt.Errorf("read server CA: %w", err)
	}
	clientCA, err := os.ReadFile(c.ClientCA.Cert())
	if err != nil {
		return fmt.Errorf("read client CA: %w", err)
	}
	if err := pki.WriteFile(nc.ClientCA, clientCA, 0o644); err != nil {
		return err
	}
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.HTTPSPort))
	if err := writeKubeconfig(nc.KubeletKubeconfig, url, caPEM, nc.KubeletClient, 0o600); err != nil {
		return err
	}
	return writeKubeconfig(nc.KubeProxyKubeconfig, url, caPEM, nc.KubeProxyClient, 0o600)
}

func writeKubeconfig(path, url string, caPEM []byte, f pki.Files, mode os.FileMode) error {
	kp, err := pki.Load(f)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	data, err := pki.Kubeconfig(url, "monokube", caPEM, kp)
	if err != nil {
		return fmt.Errorf("render kubeconfig %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create directory for %s: %w", path, err)
	}
	return pki.WriteFile(path, data, mode)
}
