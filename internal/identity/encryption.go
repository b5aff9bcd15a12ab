package identity

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"

	"github.com/monokube/monokube/internal/fsutil"
)

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
