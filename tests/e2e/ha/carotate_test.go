//go:build e2e

package ha_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/tests/harness"
)

// checkCARotation rotates the client and etcd CAs from one server and
// retires the old ones from another (tests/e2e/carotate rotates every CA
// of one server; here what matters is that every server takes each step,
// and that the servers restart one at a time for the etcd CA): at the end
// every server holds the same single new client CA, each apiserver
// refuses a client certificate of the old one and accepts the re-issued
// admin's, each etcd member refuses a client certificate of the old etcd
// CA, every server restarted in place once, in name order, some
// apiserver answered throughout, the agent's kubelet holds a client
// certificate of the new CA and every node is Ready.
func checkCARotation(t *testing.T, servers map[string]*harness.Node, agent *harness.Node) {
	s2, s3 := servers["server-2"], servers["server-3"]
	tlsDir := filepath.Join("server", "tls")
	oldCA := readFile(t, filepath.Join(s2.DataDir, tlsDir, "client-ca.crt"))
	oldAdmin, err := tls.LoadX509KeyPair(filepath.Join(s2.DataDir, tlsDir, "client-admin.crt"), filepath.Join(s2.DataDir, tlsDir, "client-admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	oldEtcdClient := etcdClientCert(t, s2)
	pids := map[string]int{}
	for name, n := range servers {
		pids[name] = n.PID()
	}
	var retireStart time.Time
	for _, step := range []struct {
		n    *harness.Node
		args []string
	}{{s2, []string{"certificate", "rotate-ca", "--ca", "client,etcd"}}, {s3, []string{"certificate", "rotate-ca", "--ca", "client,etcd", "--retire"}}} {
		start := time.Now()
		var down func() (int, time.Duration)
		if slices.Contains(step.args, "--retire") {
			retireStart, down = start, apiDown(servers)
		}
		r := step.n.Exec(5*time.Minute, harness.Options{}, append(step.args, "--data-dir", step.n.DataDir)...)
		if r.Code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", step.args, r.Code, r.Stdout, r.Stderr)
		}
		t.Logf("%v on three servers and an agent: %s\n%s", step.args, time.Since(start).Round(time.Millisecond), r.Stdout)
		if down != nil {
			if rounds, longest := down(); rounds > 0 {
				t.Errorf("no apiserver answered in %d rounds (at most %s in a row) while the servers restarted; want one always", rounds, longest)
			}
		}
	}
	checkRestartOrder(t, servers, pids, retireStart)
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
		etcdCA := firstCert(t, readFile(t, filepath.Join(n.DataDir, tlsDir, "etcd", "server-ca.crt")))
		if err := n.EtcdAccepts(oldEtcdClient, etcdCA); err == nil {
			t.Errorf("%s: etcd accepted a client certificate of the old etcd CA after --retire", name)
		}
		if err := n.EtcdAccepts(etcdClientCert(t, n), etcdCA); err != nil {
			t.Errorf("%s: etcd refused its new client certificate: %v", name, err)
		}
	}
	kubelet := readFile(t, filepath.Join(agent.DataDir, "agent", "kubelet", "pki", "kubelet-client-current.pem"))
	if err := firstCert(t, kubelet).CheckSignatureFrom(firstCert(t, newCA)); err != nil {
		t.Errorf("the agent's kubelet client certificate: %v; want it from the new client CA", err)
	}
	s3.WaitNodesReady(s3, 4)
}

// etcdClientCert is n's etcd client certificate (the apiserver's).
func etcdClientCert(t *testing.T, n *harness.Node) tls.Certificate {
	t.Helper()
	dir := filepath.Join(n.DataDir, "server", "tls", "etcd")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// apiDown asks every server's apiserver for /readyz every second (at
// most 5 minutes) until the returned func is called, which returns the
// rounds in which none answered and the longest run of them.
func apiDown(servers map[string]*harness.Node) func() (int, time.Duration) {
	quit, done := make(chan struct{}), make(chan struct{})
	rounds, longest := 0, time.Duration(0)
	go func() {
		defer close(done)
		var since time.Time
		for i := 0; i < 300; i++ {
			answered := false
			for _, n := range servers {
				if code, err := n.AnonymousGet(context.Background(), "6443", "/readyz"); err == nil && code == http.StatusOK {
					answered = true
					break
				}
			}
			switch {
			case !answered && since.IsZero():
				since, rounds = time.Now(), rounds+1
			case !answered:
				rounds++
				longest = max(longest, time.Since(since))
			default:
				since = time.Time{}
			}
			select {
			case <-quit:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return func() (int, time.Duration) {
		close(quit)
		<-done
		return rounds, longest
	}
}

// checkRestartOrder fails t unless every server restarted in place (same
// PID) exactly once since since, to drop the retired etcd CA, one at a
// time in the order of their names.
func checkRestartOrder(t *testing.T, servers map[string]*harness.Node, pids map[string]int, since time.Time) {
	t.Helper()
	var prev time.Time
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		n := servers[name]
		var at []time.Time
		for _, line := range n.LogLinesSince("restarting the server", since) {
			ts, _ := harness.LogTime(line)
			at = append(at, ts)
		}
		switch {
		case len(at) != 1:
			t.Errorf("%s restarted %d times after --retire, want once", name, len(at))
		case at[0].Before(prev):
			t.Errorf("%s restarted at %s, before the server named before it (%s)", name, at[0].Format(time.TimeOnly), prev.Format(time.TimeOnly))
		default:
			t.Logf("%s restarted at %s", name, at[0].Format(time.TimeOnly+".000"))
			prev = at[0]
		}
		if n.PID() != pids[name] {
			t.Errorf("%s: PID %d after its restart, want %d (in place)", name, n.PID(), pids[name])
		}
	}
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
