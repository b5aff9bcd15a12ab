// Package datadir derives every on-disk path monokube uses from --data-dir
// and --run-dir, so several nodes can share a machine (each with its own
// dirs) and nothing else hard-codes a path.
package datadir

import (
	"fmt"
	"os"
	"path/filepath"
)

// Layout is the tree under the data and run directories.
type Layout struct {
	Data string // --data-dir, e.g. /var/lib/monokube
	Run  string // --run-dir, e.g. /run/monokube
}

// Server-role paths, under <data>/server.
func (l Layout) Server() string   { return filepath.Join(l.Data, "server") }
func (l Layout) TLS() string      { return filepath.Join(l.Server(), "tls") }
func (l Layout) EtcdTLS() string  { return filepath.Join(l.TLS(), "etcd") }
func (l Layout) Cred() string     { return filepath.Join(l.Server(), "cred") }
func (l Layout) Etcd() string     { return filepath.Join(l.Server(), "db", "etcd") }
func (l Layout) Manifest() string { return filepath.Join(l.Server(), "manifests") }

// TLSFile is a file in the server's PKI directory.
func (l Layout) TLSFile(name string) string { return filepath.Join(l.TLS(), name) }

// EtcdTLSFile is a file in etcd's PKI directory.
func (l Layout) EtcdTLSFile(name string) string { return filepath.Join(l.EtcdTLS(), name) }

// CredFile is a credential or rendered config the control plane reads
// (component kubeconfigs, the encryption config).
func (l Layout) CredFile(name string) string { return filepath.Join(l.Cred(), name) }

// EnsureServer creates the server directories with private permissions.
func (l Layout) EnsureServer() error {
	for _, d := range []string{l.TLS(), l.EtcdTLS(), l.Cred(), l.Etcd(), l.Run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	// etcd refuses a data dir that is more open than 0700.
	return os.Chmod(l.Etcd(), 0o700)
}
