package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"time"

	certutil "k8s.io/client-go/util/cert"
)

// A CA's certificate file may hold more than one certificate while the CA
// is being rotated (identity's rotate-ca): the first is the CA that signs,
// with its key beside it; the others are CAs still trusted. Whoever reads
// the file to verify trusts them all; whoever signs uses the first.

// ParseBundle reads every certificate of a PEM bundle, in order.
func ParseBundle(data []byte) ([]*x509.Certificate, error) {
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("parse certificate bundle: %w", err)
	}
	return certs, nil
}

// BundlePEM encodes certs as one PEM bundle, in order.
func BundlePEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(CertPEM(c))
	}
	return b.Bytes()
}

// SignedByFirst reports whether cert was signed by the first CA of bundle:
// the one that signs now.
func SignedByFirst(cert *x509.Certificate, bundle []byte) bool {
	certs, err := ParseBundle(bundle)
	return err == nil && cert.CheckSignatureFrom(certs[0]) == nil
}

// CrossSign issues a certificate for other's subject and key, signed by
// ca: ca's holders then trust other through it (a CA rotation's old CA
// vouching for the new one, which join tokens that pin the old CA
// follow). It lasts as long as other, but never past ca's end.
func (ca *KeyPair) CrossSign(other *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               other.Subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              other.NotAfter,
		KeyUsage:              other.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, other.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("cross-sign %q: %w", other.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// Vouches reports whether cross, signed by ca, vouches for other: it
// names other's subject and key and is a CA's.
func Vouches(cross, ca, other *x509.Certificate) bool {
	pub, ok := cross.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return cross.IsCA && cross.CheckSignatureFrom(ca) == nil && ok && pub.Equal(other.PublicKey) &&
		bytes.Equal(cross.RawSubject, other.RawSubject)
}
