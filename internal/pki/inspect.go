package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// CertInfo is what `monokube certificate check` shows of one certificate.
type CertInfo struct {
	File     string    `json:"file"`
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	Usages   []string  `json:"usages"`
	CA       bool      `json:"ca"`
	NotAfter time.Time `json:"notAfter"`
	DaysLeft int       `json:"daysLeft"`
	Status   string    `json:"status"` // OK, WARNING or EXPIRED
}

// Status of a certificate, by its time left.
const (
	StatusOK      = "OK"
	StatusWarning = "WARNING"
	StatusExpired = "EXPIRED"
)

// InspectPEM describes every certificate in the PEM data, read from file
// (the name shown), as of now. Other PEM blocks (keys) are skipped.
func InspectPEM(file string, data []byte, now time.Time) ([]CertInfo, error) {
	var out []CertInfo
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: a certificate that does not parse: %w", file, err)
		}
		out = append(out, describe(file, cert, now))
	}
	return out, nil
}

func describe(file string, cert *x509.Certificate, now time.Time) CertInfo {
	left := cert.NotAfter.Sub(now)
	status := StatusOK
	switch {
	case left <= 0:
		status = StatusExpired
	case left < WarnBefore: // past every renewal's time: one failed
		status = StatusWarning
	}
	return CertInfo{
		File: file, Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), Usages: usages(cert),
		CA: cert.IsCA, NotAfter: cert.NotAfter.UTC(), DaysLeft: int(left.Hours() / 24), Status: status,
	}
}

// usages names a certificate's uses: CA, serving, client.
func usages(cert *x509.Certificate) []string {
	var out []string
	if cert.IsCA {
		out = append(out, "ca")
	}
	for _, u := range cert.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "server")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "client")
		default:
			out = append(out, fmt.Sprintf("ext-%d", u))
		}
	}
	if len(out) == 0 {
		out = append(out, "none")
	}
	return out
}
