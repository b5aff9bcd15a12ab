package identity

import (
	"bytes"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/testutil"
)

func TestServingCertSANs(t *testing.T) {
	cfg := testutil.ServerConfig(t, t.TempDir(), func(in *config.ServerInput) {
		in.TLSSAN = []string{"api.example.com", "203.0.113.7"}
	})
	spec := APIServerServingSpec(cfg, "MyHost")
	for _, dns := range []string{"localhost", "kubernetes.default.svc.cluster.local", "node1", "myhost", "api.example.com"} {
		if !slices.Contains(spec.DNSNames, dns) {
			t.Errorf("serving cert lacks DNS name %q: %v", dns, spec.DNSNames)
		}
	}
	var ips []string
	for _, ip := range spec.IPs {
		ips = append(ips, ip.String())
	}
	for _, ip := range []string{"127.0.0.1", "192.168.1.10", "10.43.0.1", "203.0.113.7"} {
		if !slices.Contains(ips, ip) {
			t.Errorf("serving cert lacks IP %s: %v", ip, ips)
		}
	}
}

// A restart keeps every file; a changed --tls-san re-issues only the
// apiserver's serving certificate.
func TestPKIStableAndReissuesOnlyServing(t *testing.T) {
	dir, c, nc := pkiDirs(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Now()
	cfg := testutil.ServerConfig(t, dir, nil)
	if _, _, err := ensurePKI(cfg, c, &nc, issue{life: pki.DefaultLifetime(), now: now}, log); err != nil {
		t.Fatal(err)
	}
	before := fileTimes(t, c)

	if _, _, err := ensurePKI(cfg, c, &nc, issue{life: pki.DefaultLifetime(), now: now}, log); err != nil {
		t.Fatal(err)
	}
	if changed := diff(before, fileTimes(t, c)); len(changed) != 0 {
		t.Fatalf("second start changed %v", changed)
	}

	cfg2 := testutil.ServerConfig(t, dir, func(in *config.ServerInput) { in.TLSSAN = []string{"new.example.com"} })
	if _, _, err := ensurePKI(cfg2, c, &nc, issue{life: pki.DefaultLifetime(), now: now}, log); err != nil {
		t.Fatal(err)
	}
	changed := diff(before, fileTimes(t, c))
	if !slices.Equal(changed, []string{c.APIServerServing.Cert(), c.APIServerServing.Key()}) {
		t.Fatalf("changed SANs re-issued %v, want only the apiserver serving pair", changed)
	}
	kp, err := pki.Load(c.APIServerServing)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kp.Cert.DNSNames, "new.example.com") {
		t.Errorf("re-issued cert lacks the new SAN: %v", kp.Cert.DNSNames)
	}
	ca, err := pki.Load(c.ServerCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "new.example.com"}); err != nil {
		t.Errorf("re-issued cert does not verify: %v", err)
	}
	assertKeyModes(t, c)
}

func assertKeyModes(t *testing.T, c control.Creds) {
	t.Helper()
	for _, f := range []pki.Files{c.ServerCA, c.ClientCA, c.EtcdCA, c.Admin, c.EtcdClient} {
		fi, err := os.Stat(f.Key())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f.Key(), fi.Mode().Perm())
		}
	}
}

// fileTimes maps each PKI file to its content.
func fileTimes(t *testing.T, c control.Creds) map[string][]byte {
	t.Helper()
	files := []string{c.ServiceKey, c.ServicePub}
	for _, f := range []pki.Files{c.ServerCA, c.ClientCA, c.RequestHeaderCA, c.EtcdCA, c.APIServerServing,
		c.CMServing, c.SchedulerServing, c.Admin, c.ControllerManager, c.Scheduler, c.APIServerKubelet,
		c.AuthProxy, c.EtcdServer, c.EtcdPeer, c.EtcdClient} {
		files = append(files, f.Cert(), f.Key())
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// diff lists the files whose content differs, sorted.
func diff(a, b map[string][]byte) []string {
	var out []string
	for f := range a {
		if !bytes.Equal(a[f], b[f]) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// Kubelet serving certificates come from their own CA: the server node's
// own one does not verify as a server-CA certificate (what agents and pods
// trust as the apiserver), and the apiserver's kubelet bundle holds only
// the kubelet-serving CA on a new cluster, plus the server CA on one made
// before the split.
func TestKubeletServingCA(t *testing.T) {
	dir, c, nc := pkiDirs(t)
	log := slog.New(slog.DiscardHandler)
	cfg := testutil.ServerConfig(t, dir, nil)
	if _, _, err := ensurePKI(cfg, c, &nc, issue{life: pki.DefaultLifetime(), now: time.Now()}, log); err != nil {
		t.Fatal(err)
	}
	serverCA, kubeletCA, serving := load(t, c.ServerCA), load(t, c.KubeletServingCA), load(t, nc.KubeletServing)
	if verifies(serving.Cert, serverCA.Cert) {
		t.Error("the node's kubelet serving certificate verifies against the server CA")
	}
	if !verifies(serving.Cert, kubeletCA.Cert) {
		t.Error("the node's kubelet serving certificate does not verify against the kubelet-serving CA")
	}
	if n := bundleLen(t, c.KubeletCABundle); n != 1 {
		t.Errorf("kubelet CA bundle of a new cluster has %d certificates, want 1", n)
	}
	// A cluster from before the split: the kubelet-serving CA is new.
	for _, f := range []string{c.KubeletServingCA.Cert(), c.KubeletServingCA.Key()} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ensurePKI(cfg, c, &nc, issue{life: pki.DefaultLifetime(), now: time.Now()}, log); err != nil {
		t.Fatal(err)
	}
	if n := bundleLen(t, c.KubeletCABundle); n != 2 {
		t.Errorf("kubelet CA bundle of an upgraded cluster has %d certificates, want 2 (kubelet-serving and server CA)", n)
	}
}

func load(t *testing.T, f pki.Files) *pki.KeyPair {
	t.Helper()
	kp, err := pki.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func verifies(cert, ca *x509.Certificate) bool {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

func bundleLen(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return len(certs)
}

// pkiDirs makes a server's and its node's directories in a temporary data
// dir and returns it with their credential layouts.
func pkiDirs(t *testing.T) (string, control.Creds, NodeFiles) {
	t.Helper()
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: dir + "/run"}
	if err := l.EnsureServer(); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureAgent(); err != nil {
		t.Fatal(err)
	}
	return dir, control.NewCreds(l), testNode(l)
}
