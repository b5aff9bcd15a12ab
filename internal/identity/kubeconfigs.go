package identity

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
)

// kubeconfigFile is one kubeconfig to write: where, whose credentials,
// its mode and that of its directory if it has to be made, and whether
// it names the credentials' files instead of embedding them (for the
// components of this machine, which then follow renewals).
type kubeconfigFile struct {
	path    string
	files   pki.Files
	mode    os.FileMode
	dirMode os.FileMode
	byPath  bool
}

// writeKubeconfigs renders the components' kubeconfigs and, once the
// admin group's binding was made (see WriteAdminKubeconfigs), the admin
// ones; with a node of the server's own, also that node's kubeconfigs,
// which name the node's apiserver balancer (apilb.NodeAddr), and the CA
// of the clients its kubelet accepts.
func (id *Identity) writeKubeconfigs(cfg *config.Server) error {
	c := id.Creds
	files := []kubeconfigFile{
		{c.SuperAdminKubeconfig, c.SuperAdmin, 0o600, 0o700, false},
		{c.CMKubeconfig, c.ControllerManager, 0o600, 0o700, true},
		{c.SchedulerKubeconfig, c.Scheduler, 0o600, 0o700, true},
	}
	if fsutil.Exists(c.AdminBindingMarker) {
		files = append(files, id.adminKubeconfigs(cfg)...)
	}
	if err := id.writeAll(localURL(cfg), files); err != nil {
		return err
	}
	own := id.Node
	if own == nil {
		return nil
	}
	if err := fsutil.WriteFile(own.ClientCA, id.ClientCAPEM(), 0o644); err != nil {
		return err
	}
	return id.writeAll(apilb.URL(apilb.NodeAddr()), []kubeconfigFile{
		{own.KubeletKubeconfig, own.KubeletClient, 0o600, 0o700, true},
		{own.KubeProxyKubeconfig, own.KubeProxyClient, 0o600, 0o700, true},
	})
}

// localURL is this server's apiserver on loopback.
func localURL(cfg *config.Server) string {
	return "https://" + control.LocalAPIServer(cfg.HTTPSPort)
}

// adminKubeconfigs are the admin's: server/cred/admin.kubeconfig, and the
// copy at --write-kubeconfig with --write-kubeconfig-mode, in a directory
// others may read (/etc/monokube).
func (id *Identity) adminKubeconfigs(cfg *config.Server) []kubeconfigFile {
	return []kubeconfigFile{
		{id.Creds.AdminKubeconfig, id.Creds.Admin, 0o600, 0o700, false},
		{cfg.WriteKubeconfig, id.Creds.Admin, cfg.WriteKubeconfigMode, 0o755, false},
	}
}

// WriteAdminKubeconfigs writes the admin's kubeconfigs. At first start the
// server's Access component calls it once it has bound the admin group,
// so that whoever waits for the file (a user, a script) never holds a
// kubeconfig the cluster refuses yet.
func (id *Identity) WriteAdminKubeconfigs(cfg *config.Server) error {
	return id.writeAll(localURL(cfg), id.adminKubeconfigs(cfg))
}

// writeAll writes files as kubeconfigs of the apiserver at url, which
// trust the server CA's certificate file as it is.
func (id *Identity) writeAll(url string, files []kubeconfigFile) error {
	caPEM, err := os.ReadFile(id.Creds.ServerCA.Cert())
	if err != nil {
		return fmt.Errorf("read server CA: %w", err)
	}
	for _, k := range files {
		if err := writeKubeconfig(k, url, id.Creds.ServerCA.Cert(), caPEM); err != nil {
			return err
		}
	}
	return nil
}

// writeKubeconfig renders the kubeconfig k of the local apiserver at url,
// which trusts the CA in caFile (caPEM), and writes it.
func writeKubeconfig(k kubeconfigFile, url, caFile string, caPEM []byte) error {
	kp, err := pki.Load(k.files)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", k.path, err)
	}
	data, err := pki.Kubeconfig(url, "monokube", caPEM, kp)
	if k.byPath {
		data, err = pki.KubeconfigFiles(url, "monokube", caFile, k.files)
	}
	if err != nil {
		return fmt.Errorf("render kubeconfig %s: %w", k.path, err)
	}
	if err := os.MkdirAll(filepath.Dir(k.path), k.dirMode); err != nil {
		return fmt.Errorf("create directory for %s: %w", k.path, err)
	}
	return fsutil.WriteFile(k.path, data, k.mode)
}
