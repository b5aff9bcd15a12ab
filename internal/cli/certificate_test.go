package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/pki"
)

// TestNodeCertificates: files in the TLS dirs, the kubelet's current
// rotated certificate (not its old ones) and kubeconfigs' embedded client
// certificates are all listed with their status; an expired one makes the
// check fail, naming it.
func TestNodeCertificates(t *testing.T) {
	l := datadir.Layout{Data: t.TempDir()}
	now := time.Now()
	ca, err := pki.NewCA("test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	leaf := func(name string, at time.Time) *pki.KeyPair {
		kp, err := ca.Sign(pki.Spec{CommonName: name, Usages: pki.ClientUsage}, at)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	write(l.TLSFile("server-ca.crt"), pki.CertPEM(ca.Cert))
	write(l.AgentTLSFile("old.crt"), pki.CertPEM(leaf("old", now.Add(-5*365*24*time.Hour)).Cert))
	write(l.AgentTLSFile("soon.crt"), pki.CertPEM(leaf("soon", now.Add(20*24*time.Hour-pki.LeafValidity)).Cert))
	pkiDir := filepath.Join(l.KubeletRoot(), "pki")
	write(filepath.Join(pkiDir, "kubelet-client-2020.pem"), pki.CertPEM(leaf("rotated-away", now.Add(-5*365*24*time.Hour)).Cert))
	write(filepath.Join(pkiDir, "kubelet-client-2026.pem"), pki.CertPEM(leaf("kubelet", now).Cert))
	if err := os.Symlink("kubelet-client-2026.pem", filepath.Join(pkiDir, "kubelet-client-current.pem")); err != nil {
		t.Fatal(err)
	}
	kc, err := pki.Kubeconfig("https://127.0.0.1:6443", "admin", pki.CertPEM(ca.Cert), leaf("admin", now))
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(l.Cred(), "admin.kubeconfig"), kc)

	certs, err := nodeCertificates(l, filepath.Join(l.Data, "none.yaml"), now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range certs {
		got[c.Subject] = c.Status
	}
	want := map[string]string{"CN=test-ca": "OK", "CN=old": "EXPIRED", "CN=soon": "WARNING", "CN=kubelet": "OK", "CN=admin": "OK"}
	for subject, status := range want {
		if got[subject] != status {
			t.Errorf("%s: status %q, want %q (all: %v)", subject, got[subject], status, got)
		}
	}
	if _, ok := got["CN=rotated-away"]; ok || len(got) != len(want) {
		t.Errorf("listed %v, want exactly %v", got, want)
	}
	if err := expired(certs); err == nil || !strings.Contains(err.Error(), "old.crt") || !strings.Contains(err.Error(), "restart") {
		t.Errorf("expired: %v, want an error naming old.crt and what to do", err)
	}
}
