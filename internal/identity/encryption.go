package identity

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

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
	key, err := NewEncryptionKey("monokube-1")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, RenderEncryptionConfig([]EncryptionKey{key}), 0o600)
}

// EncryptionKey is one secretbox key of the Secrets encryption config:
// its name, which etcd's ciphertext names, and its 32 bytes in base64.
type EncryptionKey struct {
	Name   string
	Secret string
}

// NewEncryptionKey returns a fresh random key called name.
func NewEncryptionKey(name string) (EncryptionKey, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return EncryptionKey{}, fmt.Errorf("generate encryption key: %w", err)
	}
	return EncryptionKey{Name: name, Secret: base64.StdEncoding.EncodeToString(key)}, nil
}

// RenderEncryptionConfig is the config of keys: Secrets are encrypted
// with secretbox (XSalsa20-Poly1305, random nonces, no key-rotation
// limit) under the first, every one decrypts, and data written before
// encryption was on is read too.
func RenderEncryptionConfig(keys []EncryptionKey) []byte {
	var b strings.Builder
	b.WriteString(`{
  "kind": "EncryptionConfiguration",
  "apiVersion": "apiserver.config.k8s.io/v1",
  "resources": [
    {
      "resources": ["secrets"],
      "providers": [
        {"secretbox": {"keys": [`)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",\n                                 ")
		}
		fmt.Fprintf(&b, "{\"name\": %q, \"secret\": %q}", k.Name, k.Secret)
	}
	b.WriteString(`]}},
        {"identity": {}}
      ]
    }
  ]
}
`)
	return []byte(b.String())
}

// ParseEncryptionConfig returns the secretbox keys of a config monokube
// wrote, the encrypting one first.
func ParseEncryptionConfig(data []byte) ([]EncryptionKey, error) {
	var ec apiserverv1.EncryptionConfiguration
	if err := json.Unmarshal(data, &ec); err != nil {
		return nil, fmt.Errorf("parse the encryption config: %w", err)
	}
	var keys []EncryptionKey
	for _, r := range ec.Resources {
		for _, p := range r.Providers {
			if p.Secretbox == nil {
				continue
			}
			for _, k := range p.Secretbox.Keys {
				keys = append(keys, EncryptionKey{Name: k.Name, Secret: k.Secret})
			}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the encryption config holds no secretbox key")
	}
	return keys, nil
}
