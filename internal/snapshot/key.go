package snapshot

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/monokube/monokube/internal/fsutil"
)

// keyPrefix starts a recovery key's text form, so a key is never taken
// for a join token (K10…) or the other way round.
const keyPrefix = "mkrk1-"

// Key is a cluster recovery key: 32 random bytes that seal the identity
// part of every snapshot of the cluster.
type Key [32]byte

// keyText encodes a key's bytes for people: base32 without padding.
func keyText() *base32.Encoding { return base32.StdEncoding.WithPadding(base32.NoPadding) }

// NewKey makes a random recovery key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("make a recovery key: %w", err)
	}
	return k, nil
}

// String is the key's text form: the prefix, then base32 in groups of
// four, easy to read out and to copy.
func (k Key) String() string {
	enc := strings.ToLower(keyText().EncodeToString(k[:]))
	var groups []string
	for len(enc) > 4 {
		groups, enc = append(groups, enc[:4]), enc[4:]
	}
	return keyPrefix + strings.Join(append(groups, enc), "-")
}

// ParseKey reads what String wrote; spaces, line breaks and case do not
// matter.
func ParseKey(s string) (Key, error) {
	s = strings.ToLower(strings.Join(strings.Fields(s), ""))
	if !strings.HasPrefix(s, keyPrefix) {
		return Key{}, errors.New("not a monokube recovery key (it starts with " + keyPrefix + "; `monokube etcd-snapshot recovery-key` on a server prints it)")
	}
	raw, err := keyText().DecodeString(strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(s, keyPrefix), "-", "")))
	if err != nil || len(raw) != len(Key{}) {
		return Key{}, errors.New("the recovery key is damaged (wrong length or characters): copy it again from where it was kept")
	}
	return Key(raw), nil
}

// ID names the key without revealing it: what a snapshot's manifest
// records, so a restore can say which key it needs.
func (k Key) ID() string {
	sum := sha256.Sum256(append([]byte("monokube recovery key id\x00"), k[:]...))
	return hex.EncodeToString(sum[:6])
}

// LoadKey reads a key file.
func LoadKey(path string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read the recovery key: %w", err)
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// EnsureKey loads the key at path, or makes one there (0600) and says so
// with created.
func EnsureKey(path string) (k Key, created bool, err error) {
	if fsutil.Exists(path) {
		k, err = LoadKey(path)
		return k, false, err
	}
	if k, err = NewKey(); err != nil {
		return Key{}, false, err
	}
	if err := fsutil.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
		return Key{}, false, fmt.Errorf("keep the recovery key: %w", err)
	}
	return k, true, nil
}

// aead is the cipher that seals snapshots' identities, with a key derived
// from k for that one use.
func (k Key) aead() (cipher.AEAD, error) {
	sub, err := hkdf.Key(sha256.New, k[:], nil, "monokube snapshot identity v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plain bound to ad: nonce, then ciphertext and tag.
func (k Key) seal(plain, ad []byte) ([]byte, error) {
	a, err := k.aead()
	if err != nil {
		return nil, fmt.Errorf("seal the identity: %w", err)
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal the identity: %w", err)
	}
	return a.Seal(nonce, nonce, plain, ad), nil
}

// open reverses seal; any change to sealed or ad fails it.
func (k Key) open(sealed, ad []byte) ([]byte, error) {
	a, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(sealed) < a.NonceSize() {
		return nil, errors.New("sealed identity too short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], ad)
}
