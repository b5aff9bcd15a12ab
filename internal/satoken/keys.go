// Package satoken signs and verifies service account tokens for
// kube-apiserver, and rotates the signing key on every server at once.
//
// kube-apiserver reads service-account keys from files only at start. So
// that the key can change while it runs, monokube serves it as an
// external JWT signer (upstream's ExternalServiceAccountTokenSigner) on a
// Unix socket only root can open: the apiserver asks the signer to sign
// each token and fetches the keys that verify tokens from it every few
// seconds, and whenever a token names a key it does not know.
//
// The keys live in two files every server holds (they are part of the
// cluster's identity): server/tls/service.key, the key that signs, and
// server/tls/service.pub, the keys that verify, the signing one first; a
// key kept after a rotation carries a Retire-After header, after which
// it verifies nothing. A rotation (Rotation) moves every server through
// the same files like a Secrets-encryption key rotation (package
// secretsenc): first the new key verifies everywhere, then it signs
// everywhere, and the old one verifies until it retires, long enough for
// the tokens it signed to expire.
package satoken

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/util/keyutil"
)

// RetireHeader is the PEM header of a verifying key's end in service.pub.
const RetireHeader = "Retire-After"

// VerifyKey is one key that verifies tokens.
type VerifyKey struct {
	ID          string    `json:"id"` // as kube-apiserver names it (KeyID)
	DER         []byte    `json:"-"`  // PKIX
	RetireAfter time.Time `json:"retireAfter,omitzero"`
}

// Set is the keys of one server: one signs, several verify.
type Set struct {
	Signer   crypto.Signer
	SignerID string
	Verify   []VerifyKey
}

// KeyID is the key ID kube-apiserver gives a public key (the unpadded
// base64url SHA-256 of its PKIX form), so that tokens signed before
// monokube signed them itself still find their key.
func KeyID(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Load reads the set from the signing key file and the verifying keys
// file, checking that the signing key is among those that verify.
func Load(keyFile, pubFile string) (Set, error) {
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return Set{}, err
	}
	pubPEM, err := os.ReadFile(pubFile)
	if err != nil {
		return Set{}, err
	}
	return Parse(keyPEM, pubPEM)
}

// Parse is Load of the files' contents.
func Parse(keyPEM, pubPEM []byte) (Set, error) {
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return Set{}, fmt.Errorf("the service-account signing key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return Set{}, errors.New("the service-account signing key cannot sign")
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return Set{}, err
	}
	s := Set{Signer: signer, SignerID: KeyID(der)}
	for block, rest := pem.Decode(pubPEM); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "PUBLIC KEY" {
			continue
		}
		if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return Set{}, fmt.Errorf("a service-account verifying key: %w", err)
		}
		v := VerifyKey{ID: KeyID(block.Bytes), DER: block.Bytes}
		if at, ok := block.Headers[RetireHeader]; ok {
			if v.RetireAfter, err = time.Parse(time.RFC3339, at); err != nil {
				return Set{}, fmt.Errorf("service-account key %s: %s: %w", v.ID, RetireHeader, err)
			}
		}
		s.Verify = append(s.Verify, v)
	}
	for _, v := range s.Verify {
		if v.ID == s.SignerID { // marked to retire only after a kill between two writes: it still signs
			return s, nil
		}
	}
	return Set{}, errors.New("the service-account signing key is not among the keys that verify (service.pub)")
}

// Active are the keys that verify at now.
func (s Set) Active(now time.Time) []VerifyKey {
	var out []VerifyKey
	for _, v := range s.Verify {
		if v.RetireAfter.IsZero() || now.Before(v.RetireAfter) {
			out = append(out, v)
		}
	}
	return out
}

// RenderPub renders verifying keys as service.pub.
func RenderPub(keys []VerifyKey) []byte {
	var b bytes.Buffer
	for _, v := range keys {
		block := &pem.Block{Type: "PUBLIC KEY", Bytes: v.DER}
		if !v.RetireAfter.IsZero() {
			block.Headers = map[string]string{RetireHeader: v.RetireAfter.UTC().Format(time.RFC3339)}
		}
		_ = pem.Encode(&b, block) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// Hash names a set's files' contents in servers' reports.
func Hash(keyPEM, pubPEM []byte) string {
	h := sha256.New()
	h.Write(keyPEM)
	h.Write([]byte{0})
	h.Write(pubPEM)
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}
