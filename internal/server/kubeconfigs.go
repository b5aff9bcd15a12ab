package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/pki"
)

// kubeconfigFile is one kubeconfig to write: where, whose credentials, mode.
type kubeconfigFile struct {
	path  string
	files pki.Files
	mode  os.FileMode
}

// writeKubeconfigs renders the components' kubeconfigs and, once the
// admin group's binding was made (see writeAdminKubeconfigs), the admin
// ones; unless --disable-agent, also the server's own node's kubeconfigs
// and the CA of the clients its kubelet accepts.
func writeKubeconfigs(cfg *config.Server, c control.Creds, nc node.Creds) error {
	caPEM, err := os.ReadFile(c.ServerCA.Cert())
	if err != nil {
		return fmt.Errorf("read server CA: %w", err)
	}
	files := []kubeconfigFile{
		{c.SuperAdminKubeconfig, c.SuperAdmin, 0o600},
		{c.CMKubeconfig, c.ControllerManager, 0o600},
		{c.SchedulerKubeconfig, c.Scheduler, 0o600},
	}
	if fsutil.Exists(c.AdminBindingMarker) {
		files = append(files, adminKubeconfigs(cfg, c)...)
	}
	if !cfg.DisableAgent {
		if err := copyClientCA(c, nc); err != nil {
			return err
		}
		files = append(files,
			kubeconfigFile{nc.KubeletKubeconfig, nc.KubeletClient, 0o600},
			kubeconfigFile{nc.KubeProxyKubeconfig, nc.KubeProxyClient, 0o600})
	}
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.HTTPSPort))
	for _, k := range files {
		if err := writeKubeconfig(k.path, url, caPEM, k.files, k.mode); err != nil {
			return err
		}
	}
	return nil
}

// copyClientCA gives the node the CA of the clients its kubelet accepts.
func copyClientCA(c control.Creds, nc node.Creds) error {
	clientCA, err := os.ReadFile(c.ClientCA.Cert())
	if err != nil {
		return fmt.Errorf("read client CA: %w", err)
	}
	return fsutil.WriteFile(nc.ClientCA, clientCA, 0o644)
}

// adminKubeconfigs are the admin's: server/cred/admin.kubeconfig, and the
// copy at --write-kubeconfig with --write-kubeconfig-mode.
func adminKubeconfigs(cfg *config.Server, c control.Creds) []kubeconfigFile {
	return []kubeconfigFile{{c.AdminKubeconfig, c.Admin, 0o600}, {cfg.WriteKubeconfig, c.Admin, cfg.WriteKubeconfigMode}}
}

// writeAdminKubeconfigs writes the admin's kubeconfigs. At first start the
// Access component calls it once it has bound the admin group, so that
// whoever waits for the file (a user, a script) never holds a kubeconfig
// the cluster refuses yet.
func writeAdminKubeconfigs(cfg *config.Server, c control.Creds) error {
	caPEM, err := os.ReadFile(c.ServerCA.Cert())
	if err != nil {
		return fmt.Errorf("read server CA: %w", err)
	}
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.HTTPSPort))
	for _, k := range adminKubeconfigs(cfg, c) {
		if err := writeKubeconfig(k.path, url, caPEM, k.files, k.mode); err != nil {
			return err
		}
	}
	return nil
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
	return fsutil.WriteFile(path, data, mode)
}
