// Package pki creates and loads the cluster's certificate authorities, leaf
// certificates, signing keys and kubeconfigs.
//
// Everything is idempotent: an existing, still-valid file is loaded and kept,
// so restarts never change a certificate that clients already trust. A leaf
// is re-issued only when its subject, names, usages or issuer no longer match
// what is asked for, or when it is close to expiry.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Validity periods.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
	// RenewBefore re-issues a leaf this long before it expires: at a
	// start, and in a running server's daily check.
	RenewBefore = 120 * 24 * time.Hour
	// WarnBefore is when `certificate check` calls a certificate close
	// to expiry: later than any renewal (monokube's at RenewBefore, a
	// kubelet's own at 70-90% of its life), so a WARNING means one was missed.
	WarnBefore = 30 * 24 * time.Hour
)

// Lifetime is how long the leaves monokube issues live and how long
// before their end they are renewed.
type Lifetime struct {
	Validity    time.Duration
	RenewBefore time.Duration
}

// DefaultLifetime is a year, renewed in its last 120 days.
func DefaultLifetime() Lifetime { return Lifetime{Validity: LeafValidity, RenewBefore: RenewBefore} }

// ShortLifetime is a test's lifetime of v, renewed once a quarter of it
// has passed, so that a test sees several renewals before the first
// certificate expires.
func ShortLifetime(v time.Duration) Lifetime { return Lifetime{Validity: v, RenewBefore: v * 3 / 4} }

// Due reports whether cert must be renewed at now.
func (l Lifetime) Due(cert *x509.Certificate, now time.Time) bool {
	return now.Add(l.RenewBefore).After(cert.NotAfter)
}

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Spec says what a leaf certificate must contain.
type Spec struct {
	CommonName   string
	Organization []string
	Usages       []x509.ExtKeyUsage
	DNSNames     []string
	IPs          []net.IP
}

// Usage shorthands for Spec.Usages.
var (
	ClientUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}                             //nolint:gochecknoglobals // constant slice
	ServerUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}                             //nolint:gochecknoglobals // constant slice
	PeerUsage   = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} //nolint:gochecknoglobals // constant slice
)

// NewKey returns a fresh ECDSA P-256 key.
func NewKey() (crypto.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// NewCA returns a self-signed certificate authority.
func NewCA(commonName string, now time.Time) (*KeyPair, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// Sign issues a leaf for spec with a fresh key, valid for LeafValidity but
// never past the CA's own end (clients would refuse it after that anyway).
func (ca *KeyPair) Sign(spec Spec, now time.Time) (*KeyPair, error) {
	return ca.SignFor(spec, now, LeafValidity)
}

// SignFor is Sign for a leaf valid for validity (still capped at the CA's end).
func (ca *KeyPair) SignFor(spec Spec, now time.Time, validity time.Duration) (*KeyPair, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  spec.Usages,
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %q: %w", spec.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// serial returns a random 128-bit serial number, as RFC 5280 recommends.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		// crypto/rand never fails on Linux ≥ 3.17; a zero serial is still valid.
		return big.NewInt(1)
	}
	return n
}
