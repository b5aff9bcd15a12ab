package pki

import (
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"time"
)

// Matches reports whether cert was issued by ca for spec and is not due
// for renewal under life at now. A leaf that ends with its CA is never
// due: a new one could not last longer (the CA's end is the warning).
func Matches(cert *x509.Certificate, ca *x509.Certificate, spec Spec, life Lifetime, now time.Time) bool {
	if cert.CheckSignatureFrom(ca) != nil || life.Due(cert, now) && cert.NotAfter.Before(ca.NotAfter) {
		return false
	}
	return cert.Subject.CommonName == spec.CommonName &&
		slices.Equal(cert.Subject.Organization, spec.Organization) &&
		slices.Equal(cert.ExtKeyUsage, spec.Usages) &&
		sameSet(cert.DNSNames, spec.DNSNames) &&
		sameSet(ipStrings(cert.IPAddresses), ipStrings(spec.IPs))
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = strings.ToLower(ip.String())
	}
	return out
}
