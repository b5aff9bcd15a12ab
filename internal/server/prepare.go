package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/node"
)

// Prepare creates (or keeps) everything the control plane reads before it
// starts: directories, PKI, the encryption and authentication configs and the
// kubeconfigs, including the admin one at --write-kubeconfig; and, unless
// --disable-agent, the credentials of the server's own node.
func Prepare(cfg *config.Server, l datadir.Layout, c control.Creds, nc node.Creds, log *slog.Logger) error {
	if err := l.EnsureServer(); err != nil {
		return err
	}
	if !cfg.DisableAgent {
		if err := l.EnsureAgent(); err != nil {
			return err
		}
	}
	if err := checkKeysKept(l, c); err != nil {
		return err
	}
	if err := EnsurePKI(cfg, c, nc, time.Now(), log); err != nil {
		return err
	}
	if err := ensureEncryptionConfig(c.EncryptionConfig); err != nil {
		return err
	}
	for file, data := range map[string][]byte{
		c.AuthnConfig: control.AuthnConfig(), c.AdmissionConfig: control.AdmissionConfig(cfg.PodSecurity), c.AuditPolicy: control.AuditPolicy(),
	} {
		if err := fsutil.WriteFile(file, data, 0o600); err != nil {
			return err
		}
	}
	return writeKubeconfigs(cfg, c, nc)
}

// checkKeysKept refuses to start over etcd data whose keys are gone: a new
// CA, service-account key or encryption key would be made silently, and
// every Secret, service account token and node's trust would be lost.
// The front-proxy and kubelet-serving CAs may be made again: nothing in
// etcd depends on them.
func checkKeysKept(l datadir.Layout, c control.Creds) error {
	if !l.HasEtcdData() {
		return nil
	}
	var missing []string
	for _, f := range []string{
		c.ServerCA.Cert(), c.ServerCA.Key(), c.ClientCA.Cert(), c.ClientCA.Key(),
		c.EtcdCA.Cert(), c.EtcdCA.Key(), c.ServiceKey, c.EncryptionConfig,
	} {
		if !fsutil.Exists(f) {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("etcd holds this cluster's data (%s), but %s missing: new keys would make its Secrets, service account tokens and every node's trust invalid; "+
		"restore %s and %s from a backup, or, to start a new cluster and lose the old one, remove %s",
		l.Etcd(), strings.Join(missing, ", ")+plural(len(missing)), l.TLS(), l.Cred(), l.Server())
}

func plural(n int) string {
	if n == 1 {
		return " is"
	}
	return " are"
}

// ensureEncryptionConfig writes the secrets-at-rest encryption config with a
// fresh random key, once. The key must never change: etcd holds data
// encrypted with it.
func ensureEncryptionConfig(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("encryption config: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate encryption key: %w", err)
	}
	return fsutil.WriteFile(path, EncryptionConfig(base64.StdEncoding.EncodeToString(key)), 0o600)
}

// EncryptionConfig renders an EncryptionConfiguration that encrypts Secrets
// with secretbox (XSalsa20-Poly1305, random nonces, no key-rotation limit) and
// can still read data written before encryption was on.
func EncryptionConfig(key string) []byte {
	return fmt.Appendf(nil, `{
  "kind": "EncryptionConfiguration",
  "apiVersion": "apiserver.config.k8s.io/v1",
  "resources": [
    {
      "resources": ["secrets"],
      "providers": [
        {"secretbox": {"keys": [{"name": "monokube-1", "secret": %q}]}},
        {"identity": {}}
      ]
    }
  ]
}
`, key)
}
