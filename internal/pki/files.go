package pki

import (
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

// EnsureLeaf loads the leaf at f and keeps it if it still Matches spec;
// otherwise it issues a new one from ca and writes it. It reports whether it
// (re-)issued the certificate.
func EnsureLeaf(f Files, ca *KeyPair, spec Spec, now time.Time) (bool, error) {
	kp, err := Load(f)
	if err == nil && Matches(kp.Cert, ca.Cert, spec, now) {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	kp, err = ca.Sign(spec, now)
	if err != nil {
		return false, err
	}
	return true, Write(f, kp)
}

// Load reads the key pair at f. A missing file yields an error wrapping
// os.ErrNotExist.
func Load(f Files) (*KeyPair, error) {
	certPEM, err := os.ReadFile(f.Cert())
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(f.Key())
	if err != nil {
		return nil, err
	}
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w; remove it to have it re-created", f.Cert(), err)
	}
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w; remove it to have it re-created", f.Key(), err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s does not hold a signing key", f.Key())
	}
	return &KeyPair{Cert: certs[0], Key: signer}, nil
}

// Write stores kp: the key 0600, the certificate 0644, each atomically.
func Write(f Files, kp *KeyPair) error {
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(kp.Key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", f.Key(), err)
	}
	if err := fsutil.WriteFile(f.Key(), keyPEM, 0o600); err != nil {
		return err
	}
	return fsutil.WriteFile(f.Cert(), CertPEM(kp.Cert), 0o644)
}

// CertPEM encodes cert as PEM.
func CertPEM(cert *x509.Certificate) []byte {
	b, _ := certutil.EncodeCertificates(cert) // only fails on a nil certificate
	return b
}

// KeyPEM encodes kp's private key as PEM.
func (kp *KeyPair) KeyPEM() ([]byte, error) { return keyutil.MarshalPrivateKeyToPEM(kp.Key) }

// EnsureSigningKey loads the private key at path, or creates one; it also
// writes the matching public key to pubPath. Used for service-account tokens.
func EnsureSigningKey(path, pubPath string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	key, err := NewKey()
	if err != nil {
		return err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	if err := fsutil.WriteFile(pubPath, pubPEM, 0o644); err != nil {
		return err
	}
	return fsutil.WriteFile(path, keyPEM, 0o600)
}
