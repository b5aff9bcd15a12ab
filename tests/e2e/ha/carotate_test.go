//go:build e2e

package ha_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/tests/harness"
)

// checkCARotation rotates the CAs from one server and retires the old
// ones from another: at the end every server holds the same single new
// server CA, each apiserver serves a certificate from it that the old CA
// does not verify, the agent's kubelet holds a client certificate from
// the new client CA and its node is Ready, and kubectl works through
// every server.
func checkCARotation(t *testing.T, servers map[string]*harness.Node, agent *harness.Node) {
	s2, s3 := servers["server-2"], servers["server-3"]
	caFile := filepath.Join("server", "tls", "server-ca.crt")
	oldCA := readFile(t, filepath.Join(s2.DataDir, caFile))
	for _, step := range []struct {
		n    *harness.Node
		args []string
	}{{s2, []string{"certificate", "rotate-ca"}}, {s3, []string{"certificate", "rotate-ca", "--retire"}}} {
		start := time.Now()
		r := step.n.Exec(8*time.Minute, harness.Options{}, append(step.args, "--data-dir", step.n.DataDir)...)
		if r.Code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", step.args, r.Code, r.Stdout, r.Stderr)
		}
		t.Logf("%v on three servers and an agent: %s\n%s", step.args, time.Since(start).Round(time.Millisecond), r.Stdout)
	}
	newCA := readFile(t, filepath.Join(s2.DataDir, caFile))
	if newCA == oldCA || strings.Count(newCA, "BEGIN CERTIFICATE") != 1 {
		t.Fatalf("server-2's server CA after the rotation and retirement: %d certificates, changed %v; want one, new",
			strings.Count(newCA, "BEGIN CERTIFICATE"), newCA != oldCA)
	}
	for name, n := range servers {
		if got := readFile(t, filepath.Join(n.DataDir, caFile)); got != newCA {
			t.Errorf("%s holds another server CA than server-2", name)
		}
		checkServedBy(t, name, n, newCA, oldCA)
		if got := strings.TrimSpace(n.Kubectl("get", "node", "agent-1", "-o", "jsonpath={.metadata.annotations.monokube\\.io/ca-bundles}")); got == "" {
			t.Errorf("through %s: the agent reports no CA bundles taken", name)
		}
	}
	kubelet := readFile(t, filepath.Join(agent.DataDir, "agent", "kubelet", "pki", "kubelet-client-current.pem"))
	clientCA := readFile(t, filepath.Join(s2.DataDir, "server", "tls", "client-ca.crt"))
	if err := firstCert(t, kubelet).CheckSignatureFrom(firstCert(t, clientCA)); err != nil {
		t.Errorf("the agent's kubelet client certificate: %v; want it from the new client CA", err)
	}
	s3.WaitNodesReady(s3, 4)
}

// checkServedBy checks that n's apiserver serves a certificate that the
// CA in pemCA verifies and the one in oldCA does not.
func checkServedBy(t *testing.T, name string, n *harness.Node, pemCA, oldCA string) {
	t.Helper()
	conn, err := n.NS.DialContext(t.Context(), "tcp", n.NS.IP+":6443")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	c := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // verified below, against each CA
	defer c.Close()
	if err := c.HandshakeContext(t.Context()); err != nil {
		t.Fatalf("%s: handshake: %v", name, err)
	}
	served := c.ConnectionState().PeerCertificates[0]
	for _, ca := range []struct {
		pem  string
		want bool
	}{{pemCA, true}, {oldCA, false}} {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(ca.pem))
		_, err := served.Verify(x509.VerifyOptions{Roots: pool})
		if (err == nil) != ca.want {
			t.Errorf("%s's apiserver certificate verified by the %s CA: %v", name, map[bool]string{true: "new", false: "old"}[ca.want], err)
		}
	}
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
