//go:build e2e

package ha_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/tests/harness"
)

// checkCARotation rotates the client CA from one server and retires the
// old one from another (tests/e2e/carotate rotates every CA of one
// server; here what matters is that every server takes each step): at the
// end every server holds the same single new client CA, each apiserver
// refuses a client certificate of the old one and accepts the re-issued
// admin's, the agent's kubelet holds a client certificate of the new CA
// and every node is Ready.
func checkCARotation(t *testing.T, servers map[string]*harness.Node, agent *harness.Node) {
	s2, s3 := servers["server-2"], servers["server-3"]
	tlsDir := filepath.Join("server", "tls")
	oldCA := readFile(t, filepath.Join(s2.DataDir, tlsDir, "client-ca.crt"))
	oldAdmin, err := tls.LoadX509KeyPair(filepath.Join(s2.DataDir, tlsDir, "client-admin.crt"), filepath.Join(s2.DataDir, tlsDir, "client-admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		n    *harness.Node
		args []string
	}{{s2, []string{"certificate", "rotate-ca", "--ca", "client"}}, {s3, []string{"certificate", "rotate-ca", "--ca", "client", "--retire"}}} {
		start := time.Now()
		r := step.n.Exec(5*time.Minute, harness.Options{}, append(step.args, "--data-dir", step.n.DataDir)...)
		if r.Code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", step.args, r.Code, r.Stdout, r.Stderr)
		}
		t.Logf("%v on three servers and an agent: %s\n%s", step.args, time.Since(start).Round(time.Millisecond), r.Stdout)
	}
	newCA := readFile(t, filepath.Join(s2.DataDir, tlsDir, "client-ca.crt"))
	if newCA == oldCA || strings.Count(newCA, "BEGIN CERTIFICATE") != 1 {
		t.Fatalf("server-2's client CA after the rotation and retirement: %d certificates, changed %v; want one, new",
			strings.Count(newCA, "BEGIN CERTIFICATE"), newCA != oldCA)
	}
	for name, n := range servers {
		if got := readFile(t, filepath.Join(n.DataDir, tlsDir, "client-ca.crt")); got != newCA {
			t.Errorf("%s holds another client CA than server-2", name)
		}
		newAdmin, err := tls.LoadX509KeyPair(filepath.Join(n.DataDir, tlsDir, "client-admin.crt"), filepath.Join(n.DataDir, tlsDir, "client-admin.key"))
		if err != nil {
			t.Fatal(err)
		}
		if code := getAPI(t, n, oldAdmin); code != http.StatusUnauthorized {
			t.Errorf("%s: the admin certificate of the old client CA got %d, want 401", name, code)
		}
		if code := getAPI(t, n, newAdmin); code != http.StatusOK {
			t.Errorf("%s: its re-issued admin certificate got %d, want 200", name, code)
		}
	}
	kubelet := readFile(t, filepath.Join(agent.DataDir, "agent", "kubelet", "pki", "kubelet-client-current.pem"))
	if err := firstCert(t, kubelet).CheckSignatureFrom(firstCert(t, newCA)); err != nil {
		t.Errorf("the agent's kubelet client certificate: %v; want it from the new client CA", err)
	}
	s3.WaitNodesReady(s3, 4)
}

// getAPI GETs /api from n's apiserver with the client certificate cert
// and returns the status.
func getAPI(t *testing.T, n *harness.Node, cert tls.Certificate) int {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true} //nolint:gosec // the server is not under test here
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DialContext: n.NS.DialContext}}
	resp, err := c.Get("https://" + n.NS.IP + ":6443/api")
	if err != nil {
		t.Fatalf("GET /api on %s: %v", n.NS.IP, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// firstCert parses the first certificate of PEM data.
func firstCert(t *testing.T, data string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(data))
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
