package pki

import (
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"
)

func newCA(t *testing.T, now time.Time) *KeyPair {
	t.Helper()
	ca, err := NewCA("test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serverSpec() Spec {
	return Spec{
		CommonName:   "kube-apiserver",
		Organization: []string{"monokube"},
		Usages:       ServerUsage,
		DNSNames:     []string{"localhost", "kubernetes.default.svc"},
		IPs:          []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.43.0.1")},
	}
}

func TestSignVerifies(t *testing.T) {
	now := time.Now()
	ca := newCA(t, now)
	if !ca.Cert.IsCA || ca.Cert.Subject.CommonName != "test-ca" {
		t.Errorf("CA cert: IsCA=%v CN=%q", ca.Cert.IsCA, ca.Cert.Subject.CommonName)
	}
	for _, tc := range []struct {
		name  string
		spec  Spec
		usage x509.ExtKeyUsage
		wrong x509.ExtKeyUsage
	}{
		{"server", serverSpec(), x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		{"client", Spec{CommonName: "admin", Organization: []string{"system:masters"}, Usages: ClientUsage}, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		{"peer", Spec{CommonName: "etcd", Usages: PeerUsage, IPs: []net.IP{net.ParseIP("::1")}}, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageCodeSigning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf, err := ca.Sign(tc.spec, now)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.Cert)
			opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{tc.usage}}
			if _, err := leaf.Cert.Verify(opts); err != nil {
				t.Errorf("leaf does not verify for %v: %v", tc.usage, err)
			}
			opts.KeyUsages = []x509.ExtKeyUsage{tc.wrong}
			if _, err := leaf.Cert.Verify(opts); err == nil {
				t.Errorf("leaf verifies for usage %v it was not issued for", tc.wrong)
			}
			if leaf.Cert.IsCA {
				t.Error("leaf is a CA")
			}
			if got := leaf.Cert.Subject.CommonName; got != tc.spec.CommonName {
				t.Errorf("CN %q, want %q", got, tc.spec.CommonName)
			}
			if !slices.Equal(leaf.Cert.DNSNames, tc.spec.DNSNames) {
				t.Errorf("DNS names %q, want %q", leaf.Cert.DNSNames, tc.spec.DNSNames)
			}
			if !slices.Equal(ipStrings(leaf.Cert.IPAddresses), ipStrings(tc.spec.IPs)) {
				t.Errorf("IPs %v, want %v", leaf.Cert.IPAddresses, tc.spec.IPs)
			}
			if !Matches(leaf.Cert, ca.Cert, tc.spec, DefaultLifetime(), now) {
				t.Error("fresh leaf does not match its own spec")
			}
		})
	}
}

func TestMatches(t *testing.T) {
	now := time.Now()
	ca := newCA(t, now)
	leaf, err := ca.Sign(serverSpec(), now)
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t, now)
	for _, tc := range []struct {
		name   string
		change func(*Spec)
		ca     *KeyPair
		now    time.Time
		want   bool
	}{
		{"same spec", nil, ca, now, true},
		{"names in another order", func(s *Spec) { slices.Reverse(s.DNSNames); slices.Reverse(s.IPs) }, ca, now, true},
		{"IPv4 in 4-byte form", func(s *Spec) { s.IPs = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv4(10, 43, 0, 1).To4()} }, ca, now, true},
		{"DNS name added", func(s *Spec) { s.DNSNames = append(s.DNSNames, "api.example.com") }, ca, now, false},
		{"DNS name removed", func(s *Spec) { s.DNSNames = s.DNSNames[:1] }, ca, now, false},
		{"IP changed", func(s *Spec) { s.IPs[1] = net.ParseIP("10.43.0.2") }, ca, now, false},
		{"IP added", func(s *Spec) { s.IPs = append(s.IPs, net.ParseIP("::1")) }, ca, now, false},
		{"CN changed", func(s *Spec) { s.CommonName = "other" }, ca, now, false},
		{"organization changed", func(s *Spec) { s.Organization = nil }, ca, now, false},
		{"usages changed", func(s *Spec) { s.Usages = PeerUsage }, ca, now, false},
		{"different CA", nil, other, now, false},
		{"before renewal window", nil, ca, now.Add(LeafValidity - RenewBefore - time.Hour), true},
		{"near expiry", nil, ca, now.Add(LeafValidity - RenewBefore + time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := serverSpec()
			if tc.change != nil {
				tc.change(&spec)
			}
			if got := Matches(leaf.Cert, tc.ca.Cert, spec, DefaultLifetime(), tc.now); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

// A leaf that ends with its CA is not due: a new one would end there too,
// and re-issuing it at every check would change nothing but its key.
func TestMatchesCappedByCA(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("ca", now.Add(-CAValidity+30*24*time.Hour)) // 30 days left
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Sign(serverSpec(), now)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("leaf ends %s, want capped at the CA's %s", leaf.Cert.NotAfter, ca.Cert.NotAfter)
	}
	if !Matches(leaf.Cert, ca.Cert, serverSpec(), DefaultLifetime(), now) {
		t.Error("a leaf capped at its CA's end is due")
	}
}

func TestCipherSuiteIDs(t *testing.T) {
	if ids, err := CipherSuiteIDs(); err != nil || len(ids) != len(CipherSuites()) {
		t.Errorf("CipherSuiteIDs: %d suites, %v; want one for each of the %d CipherSuites", len(ids), err, len(CipherSuites()))
	}
}
