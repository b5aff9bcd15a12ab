// Package secretsenc rotates the key that encrypts Secrets in etcd, on
// every server of a cluster at once.
//
// Each server's kube-apiserver reads its encryption config from a file
// (server/cred/encryption-config.json) and reloads it when it changes. A
// rotation moves every server through the same configs, one stage at a
// time, and goes on only once every server's apiserver reports that it
// applied the stage's config:
//
//   - prepare: the new key is added, for reading only; the old one still
//     encrypts (a server that writes with the new key before the others
//     can read it would make Secrets unreadable to them);
//   - rotate: the new key encrypts, the old one still reads;
//   - reencrypt: every Secret is written again, so etcd holds only
//     ciphertext of the new key;
//   - finished: the old key is dropped.
//
// The desired config travels in the ConfigMap kube-system/
// monokube-secrets-encryption, sealed with a key every server holds in
// every stage: the key that encrypted when the rotation began, and once
// the old key is dropped, the new one (the finished config is sealed with
// it, and every server holds it since the prepare stage). It is not a
// Secret so that a server whose apiserver cannot yet read the new key's
// ciphertext can still read it. Each server reports the hash of the
// config its apiserver applied in kube-system/
// monokube-secrets-encryption-status, under its name.
package secretsenc

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/monokube/monokube/internal/identity"
)

// Where the state and the servers' reports live.
const (
	Namespace  = "kube-system"
	StateName  = "monokube-secrets-encryption"
	StatusName = "monokube-secrets-encryption-status"
)

// Stage of a rotation.
type Stage string

// The stages, in order; "" is a cluster that never rotated.
const (
	StagePrepare   Stage = "prepare"
	StageRotate    Stage = "rotate"
	StageReencrypt Stage = "reencrypt"
	StageFinished  Stage = "finished"
)

// State is the cluster's desired encryption config and its stage.
type State struct {
	Stage Stage
	// Config is the encryption config every server must apply.
	Config []byte
	// SealedWith names the key that seals Config in the ConfigMap.
	SealedWith string
	// version is the ConfigMap's resourceVersion st was read at, "" if
	// there is none yet.
	version string
}

// Hash is how kube-apiserver names a config it applied (its
// apiserver_encryption_config_controller_last_config_info metric).
func Hash(config []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(config)) }

// Keys of the ConfigMap's data.
const (
	keyStage      = "stage"
	keySealed     = "config.sealed"
	keySealedWith = "sealedWith"
	keyHash       = "hash"
)

// sealInfo separates this use of an encryption key from any other.
const sealInfo = "monokube secrets-encryption state v1"

// seal is Seal for the encryption state.
func seal(config []byte, key identity.EncryptionKey) (string, error) {
	return Seal(config, key, sealInfo)
}

// open is Open for the encryption state.
func open(sealed string, key identity.EncryptionKey) ([]byte, error) {
	return Open(sealed, key, sealInfo)
}

// Seal encrypts data with key (AES-256-GCM under an HKDF subkey for info,
// which names the use), bound to the key's name: for state the servers
// share through the apiserver, which they all can read in every stage.
func Seal(data []byte, key identity.EncryptionKey, info string) (string, error) {
	aead, err := aeadOf(key, info)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, data, []byte(key.Name))), nil
}

// Open decrypts what Seal made with key for info.
func Open(sealed string, key identity.EncryptionKey, info string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, fmt.Errorf("decode the sealed state: %w", err)
	}
	aead, err := aeadOf(key, info)
	if err != nil {
		return nil, err
	}
	if len(data) < aead.NonceSize() {
		return nil, errors.New("the sealed state is truncated")
	}
	out, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(key.Name))
	if err != nil {
		return nil, fmt.Errorf("the sealed state does not open with key %s: %w", key.Name, err)
	}
	return out, nil
}

// aeadOf is AES-256-GCM under key's HKDF subkey for info.
func aeadOf(key identity.EncryptionKey, info string) (cipher.AEAD, error) {
	secret, err := base64.StdEncoding.DecodeString(key.Secret)
	if err != nil {
		return nil, fmt.Errorf("encryption key %s: %w", key.Name, err)
	}
	sub, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encode is s as the ConfigMap's data, sealed with key.
func encode(s State, key identity.EncryptionKey) (map[string]string, error) {
	sealed, err := seal(s.Config, key)
	if err != nil {
		return nil, err
	}
	return map[string]string{keyStage: string(s.Stage), keySealed: sealed, keySealedWith: key.Name, keyHash: Hash(s.Config)}, nil
}

// decode reads the ConfigMap's data with whichever of keys sealed it.
func decode(data map[string]string, keys []identity.EncryptionKey) (State, error) {
	s := State{Stage: Stage(data[keyStage]), SealedWith: data[keySealedWith]}
	for _, k := range keys {
		if k.Name != s.SealedWith {
			continue
		}
		config, err := open(data[keySealed], k)
		if err != nil {
			return s, err
		}
		s.Config = config
		return s, nil
	}
	return s, fmt.Errorf("the cluster's encryption config is sealed with key %s, which this server does not hold: "+
		"it missed a whole key rotation; copy server/cred/encryption-config.json from another server and restart it", s.SealedWith)
}

// Find returns the key called name among keys.
func Find(keys []identity.EncryptionKey, name string) (identity.EncryptionKey, bool) {
	for _, k := range keys {
		if k.Name == name {
			return k, true
		}
	}
	return identity.EncryptionKey{}, false
}
