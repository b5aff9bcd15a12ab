// Package datadir derives every on-disk path monokube uses from --data-dir
// and --run-dir, so several nodes can share a machine (each with its own
// dirs) and nothing else hard-codes a path.
package datadir

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/monokube/monokube/internal/fsutil"
)

// Layout is the tree under the data and run directories.
type Layout struct {
	Data string // --data-dir, e.g. /var/lib/monokube
	Run  string // --run-dir, e.g. /run/monokube
}

// Server is the server role's dir, <data>/server.
func (l Layout) Server() string { return filepath.Join(l.Data, "server") }

// TLS holds the cluster's CAs, leaf certificates and service-account key.
func (l Layout) TLS() string { return filepath.Join(l.Server(), "tls") }

// EtcdTLS holds etcd's CA and certificates.
func (l Layout) EtcdTLS() string { return filepath.Join(l.TLS(), "etcd") }

// Cred holds the control plane's kubeconfigs and configs.
func (l Layout) Cred() string { return filepath.Join(l.Server(), "cred") }

// Etcd is etcd's data dir.
func (l Layout) Etcd() string { return filepath.Join(l.Server(), "db", "etcd") }

// EtcdBackend is the etcd member's backend database (bbolt).
func (l Layout) EtcdBackend() string { return filepath.Join(l.Etcd(), "member", "snap", "db") }

// Manifest is the manifests dir the server keeps applied.
func (l Layout) Manifest() string { return filepath.Join(l.Server(), "manifests") }

// Logs holds the apiserver's audit log.
func (l Layout) Logs() string { return filepath.Join(l.Server(), "logs") }

// Token is the server's own join token (internal/join).
func (l Layout) Token() string { return filepath.Join(l.Server(), "token") }

// Versions holds one directory per binary version, named by a prefix of
// its content hash: the launcher's unpacked monokube and the extracted
// helper binaries (internal/assets). Old ones go once unused
// (internal/upgrade).
func (l Layout) Versions() string { return filepath.Join(l.Data, "data") }

// VersionNameLen is how many hex digits of an unpacked version's SHA-256
// name its directory under Versions.
const VersionNameLen = 16

// VersionDir is the directory of one unpacked version under Versions,
// named by the first VersionNameLen hex digits of its content's SHA-256.
func (l Layout) VersionDir(sha256Hex string) string {
	return filepath.Join(l.Versions(), sha256Hex[:min(VersionNameLen, len(sha256Hex))])
}

// VersionFile records the versions that last ran on this data dir
// (internal/upgrade).
func (l Layout) VersionFile() string { return filepath.Join(l.Data, "version.json") }

// Storage is where the local-path addon keeps each node's volumes.
func (l Layout) Storage() string { return filepath.Join(l.Data, "storage") }

// ManifestState records what the manifests controller applied.
func (l Layout) ManifestState() string { return filepath.Join(l.Server(), "manifests-applied.json") }

// Agent is the node role's dir, <data>/agent.
func (l Layout) Agent() string { return filepath.Join(l.Data, "agent") }

// AgentTLS holds the node's certificates.
func (l Layout) AgentTLS() string { return filepath.Join(l.Agent(), "tls") }

// AgentEtc holds the node's rendered configs and kubeconfigs.
func (l Layout) AgentEtc() string { return filepath.Join(l.Agent(), "etc") }

// Images is where a user drops image tarballs to import.
func (l Layout) Images() string { return filepath.Join(l.Agent(), "images") }

// ImageState records which tarballs were imported.
func (l Layout) ImageState() string { return filepath.Join(l.Agent(), "images-imported.json") }

// ContainerdRoot is containerd's content and snapshot store.
func (l Layout) ContainerdRoot() string { return filepath.Join(l.Agent(), "containerd") }

// ContainerdOpt is containerd's opt dir.
func (l Layout) ContainerdOpt() string { return filepath.Join(l.Agent(), "containerd-opt") }

// ContainerdState is containerd's runtime state, under the run dir.
func (l Layout) ContainerdState() string { return filepath.Join(l.Run, "containerd") }

// ContainerdSocket is the node's containerd socket.
func (l Layout) ContainerdSocket() string {
	return filepath.Join(l.ContainerdState(), "containerd.sock")
}

// ContainerdTasks holds containerd's task bundles (one per container,
// under a namespace dir), each with the shim's bootstrap.json.
func (l Layout) ContainerdTasks() string {
	return filepath.Join(l.ContainerdState(), "io.containerd.runtime.v2.task")
}

// FlannelSubnetFile is where flannel records the node's pod subnet.
func (l Layout) FlannelSubnetFile() string { return filepath.Join(l.Run, "flannel", "subnet.env") }

// RuncRoot is runc's state dir.
func (l Layout) RuncRoot() string { return filepath.Join(l.Run, "runc") }

// CNIConfDir holds the node's CNI conflist.
func (l Layout) CNIConfDir() string { return filepath.Join(l.AgentEtc(), "cni", "net.d") }

// KubeletRoot is the kubelet's root dir.
func (l Layout) KubeletRoot() string { return filepath.Join(l.Agent(), "kubelet") }

// AgentFile is a credential or rendered config of the node.
func (l Layout) AgentFile(name string) string { return filepath.Join(l.AgentEtc(), name) }

// AgentTLSFile is a file in the node's PKI directory.
func (l Layout) AgentTLSFile(name string) string { return filepath.Join(l.AgentTLS(), name) }

// EnsureAgent refuses a data dir others can write, marks it as monokube's,
// creates the node's directories and removes the temp files
// a killed write left in them.
func (l Layout) EnsureAgent() error {
	if err := l.secure(); err != nil {
		return err
	}
	if err := l.mark(); err != nil {
		return err
	}
	for _, d := range []string{l.AgentTLS(), l.AgentEtc(), l.Images(), l.ContainerdRoot(), l.KubeletRoot(), l.Run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return fsutil.RemoveStaleTemps(l.Data, l.Agent(), l.AgentTLS(), l.AgentEtc())
}

// TLSFile is a file in the server's PKI directory.
func (l Layout) TLSFile(name string) string { return filepath.Join(l.TLS(), name) }

// EtcdTLSFile is a file in etcd's PKI directory.
func (l Layout) EtcdTLSFile(name string) string { return filepath.Join(l.EtcdTLS(), name) }

// CredFile is a credential or rendered config the control plane reads
// (component kubeconfigs, the encryption config).
func (l Layout) CredFile(name string) string { return filepath.Join(l.Cred(), name) }

// EnsureServer refuses a data dir others can write, marks it as
// monokube's, creates the server directories with private permissions and
// removes the temp files a killed write left in them (copies of keys).
func (l Layout) EnsureServer() error {
	if err := l.secure(); err != nil {
		return err
	}
	if err := l.mark(); err != nil {
		return err
	}
	for _, d := range []string{l.TLS(), l.EtcdTLS(), l.Cred(), l.Etcd(), l.Logs(), l.Run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	// etcd refuses a data dir that is more open than 0700.
	if err := os.Chmod(l.Etcd(), 0o700); err != nil {
		return err
	}
	return fsutil.RemoveStaleTemps(l.Data, l.Server(), l.TLS(), l.EtcdTLS(), l.Cred(), l.Manifest())
}

// HasEtcdData reports whether etcd has data here: from then on the keys
// that data depends on must never be made anew.
func (l Layout) HasEtcdData() bool { return fsutil.Exists(filepath.Join(l.Etcd(), "member")) }
