package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/monokube/monokube/internal/fsutil"
)

// Files names where a key pair lives: <base>.crt and <base>.key.
type Files string

// Cert is the certificate path.
func (f Files) Cert() string { return string(f) + ".crt" }

// Key is the private key path.
func (f Files) Key() string { return string(f) + ".key" }

// EnsureCA loads the CA at f, or creates and writes one if there is none.
func EnsureCA(f Files, commonName string, now time.Time) (*KeyPair, error) {
	kp, err := Load(f)
	if errors.Is(err, ErrMismatch) {
		return nil, fmt.Errorf("%w: restore the pair from a backup (a new CA would invalidate every certificate it signed)", err)
	}
	if err == nil {
		if !kp.Cert.IsCA {
			return nil, fmt.Errorf("%s is not a CA certificate: move it away and restart to create a new CA", f.Cert())
		}
		return kp, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	kp, err = NewCA(commonName, now)
	if err != nil {
		return nil, err
	}
	return kp, Write(f, kp)
}

// EnsureLeaf loads the leaf at f and keeps it if it still Matches spec
// under life; otherwise it issues a new one from ca, valid for
// life.Validity, and writes it. It reports whether it (re-)issued the
// certificate.
func EnsureLeaf(f Files, ca *KeyPair, spec Spec, life Lifetime, now time.Time) (bool, error) {
	kp, err := Load(f)
	if err == nil && Matches(kp.Cert, ca.Cert, spec, life, now) {
		return false, nil
	}
	// A missing file, or a key and certificate of two pairs (a kill
	// between Write's two renames), is issued again.
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, ErrMismatch) {
		return false, err
	}
	kp, err = ca.SignFor(spec, now, life.Validity)
	if err != nil {
		return false, err
	}
	return true, Write(f, kp)
}

// ErrMismatch is Load's error for a key that is not the certificate's.
var ErrMismatch = errors.New("the key does not belong to the certificate")

// Load reads the key pair at f. A missing file yields an error wrapping
// os.ErrNotExist; a key that is not the certificate's, ErrMismatch.
func Load(f Files) (*KeyPair, error) {
	certPEM, err := os.ReadFile(f.Cert())
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(f.Key())
	if err != nil {
		return nil, err
	}
	kp, err := Parse(certPEM, keyPEM, f)
	if err != nil && !errors.Is(err, ErrMismatch) {
		return nil, fmt.Errorf("%w; remove it to have it re-created", err)
	}
	return kp, err
}

// Parse reads a certificate and its key from PEM, named in errors as f's
// files, and checks that they are one pair (ErrMismatch if not).
func Parse(certPEM, keyPEM []byte, f Files) (*KeyPair, error) {
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", f.Cert(), err)
	}
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", f.Key(), err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s does not hold a signing key", f.Key())
	}
	if pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(signer.Public()) {
		return nil, fmt.Errorf("%s and %s: %w", f.Key(), f.Cert(), ErrMismatch)
	}
	return &KeyPair{Cert: certs[0], Key: signer}, nil
}

// Write stores kp: the key 0600, the certificate 0644, each atomically,
// one rename right after the other.
func Write(f Files, kp *KeyPair) error {
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(kp.Key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", f.Key(), err)
	}
	// Both renamed at once: components that watch the pair (the
	// apiserver's serving certificate) reload it while the server runs.
	return fsutil.WriteFiles(fsutil.File{Path: f.Key(), Data: keyPEM, Mode: 0o600},
		fsutil.File{Path: f.Cert(), Data: CertPEM(kp.Cert), Mode: 0o644})
}

// CertPEM encodes cert as PEM.
func CertPEM(cert *x509.Certificate) []byte {
	b, _ := certutil.EncodeCertificates(cert) // only fails on a nil certificate
	return b
}

// KeyPEM encodes kp's private key as PEM.
func (kp *KeyPair) KeyPEM() ([]byte, error) { return keyutil.MarshalPrivateKeyToPEM(kp.Key) }

// EnsureSigningKey loads the private key at path, or creates one; and
// writes the matching public key to pubPath (again, if it was lost or
// does not hold it: after a key rotation it holds older keys too, which
// stay). Used for service-account tokens.
func EnsureSigningKey(path, pubPath string) error {
	key, err := loadSigningKey(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err = newSigningKey(path)
	}
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(pubPath); err == nil && holdsKey(old, pubDER) {
		return nil
	}
	return fsutil.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
}

// holdsKey reports whether the PEM data holds the public key der.
func holdsKey(data, der []byte) bool {
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == "PUBLIC KEY" && bytes.Equal(block.Bytes, der) {
			return true
		}
	}
	return false
}

func loadSigningKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := keyutil.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w; restore it from a backup (a new key invalidates every service account token)", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s does not hold a signing key", path)
	}
	return signer, nil
}

func newSigningKey(path string) (crypto.Signer, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, err
	}
	return key, fsutil.WriteFile(path, keyPEM, 0o600)
}
