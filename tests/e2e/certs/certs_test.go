//go:build e2e

// Package certs_test checks the renewal of a node's certificates: a
// server whose leaves live eight minutes, with its node and an agent whose
// kubelet certificates live as long, renews them while it runs, and
// kubectl, both kubelets, exec, logs and metrics keep working past the
// expiry of every certificate the nodes started with, with no container
// restarted; `certificate rotate` re-issues exactly the leaves of the
// services it names, at once on a running server and at the next start
// of a stopped one.
package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/tests/harness"
)

// lifetime is the leaves' life in the renewal test: the shortest the
// server accepts.
const lifetime = 8 * time.Minute

const (
	serverName = "server-1"
	agentName  = "agent-1"
)

func TestCertificates(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	harness.HoldMountpoints(t) // the two subtests below run side by side
	t.Run("renewal while running", renewalWhileRunning)
	t.Run("rotate command", rotateCommand)
}

// renewalWhileRunning: a server with its node and an agent, every leaf
// living 8 minutes, are used every 30 s until each certificate they
// started with has expired, then checked: every one re-issued and served,
// both nodes Ready, exec, logs and metrics working, no restart.
func renewalWhileRunning(t *testing.T) {
	t.Parallel()
	network := harness.NewNetwork(t)
	artifacts := t.ArtifactDir() // before the nodes: their logs are copied there on failure
	srv := harness.NewNode(t, network, 2)
	srv.Env = []string{"MONOKUBE_TEST_CERT_LIFETIME=" + lifetime.String()}
	srv.StageImages(nil)
	agent := harness.NewNode(t, network, 3)
	agent.StageImages(nil)
	keepLogs(t, artifacts, srv, agent)
	started := time.Now()
	srv.StartServerNode("--node-name", serverName, "--disable", "local-storage",
		"--kube-controller-manager-arg", "cluster-signing-duration="+lifetime.String())
	srv.WaitReadyz(2 * time.Minute)
	srv.WaitNodeReady(3 * time.Minute)
	t.Logf("server start to node Ready: %s", time.Since(started).Round(time.Millisecond))
	srvLeaves := serverLeaves(t, srv)
	checkShortLived(t, srvLeaves, started)

	agent.StartAgent(srv, srv.JoinToken(), agentName)
	agent.WaitNodesReady(srv, 2)
	waitFile(agent, filepath.Join(agent.DataDir, "agent", "kubelet", "pki", "kubelet-server-current.pem"))
	agentCerts, code := checkCerts(t, agent)
	if code != 0 {
		t.Fatalf("certificate check on the fresh agent: exit %d", code)
	}
	agentLeaves := leaves(agentCerts)
	for _, f := range []string{"kubelet-client-current.pem", "kubelet-server-current.pem"} {
		if !slices.ContainsFunc(slices.Collect(maps.Values(agentLeaves)), func(c cert) bool { return strings.HasSuffix(c.File, f) }) {
			t.Errorf("certificate check on the agent lists no %s among %v", f, slices.Sorted(maps.Keys(agentLeaves)))
		}
	}
	endpoints := []endpoint{
		{"kube-apiserver", srv, srv.NS.IP + ":6443"},
		{"etcd", srv, "127.0.0.1:2379"},
		{"kube-controller-manager", srv, "127.0.0.1:10257"},
		{"kube-scheduler", srv, "127.0.0.1:10259"},
		{"server's kubelet", srv, srv.NS.IP + ":10250"},
		{"agent's kubelet", agent, agent.NS.IP + ":10250"},
	}
	served := servedCerts(t, endpoints)

	srv.Kubectl("apply", "-f", srv.PinnedEcho("on-server", serverName))
	srv.Kubectl("apply", "-f", srv.PinnedEcho("on-agent", agentName))
	selectors := []string{"app=on-server", "app=on-agent"}
	var pods []string
	for _, sel := range selectors {
		srv.WaitRunning(2*time.Minute, sel, 1)
		pods = append(pods, podName(srv, sel))
	}

	// Until every leaf the server started with has expired, plus a
	// minute, and the agent's kubelet has renewed its own.
	until := latest(srvLeaves).Add(time.Minute)
	t.Logf("server leaves recorded %s after start; the last expires %s after start; using the cluster until %s after start",
		time.Since(started).Round(time.Second), latest(srvLeaves).Sub(started).Round(time.Second), until.Sub(started).Round(time.Second))
	var tl tally
	w := useCluster(t, srv, agent, pods, &tl, started, until, func() bool {
		now, _ := checkCerts(t, agent)
		return len(notRenewed(agentLeaves, leaves(now))) == 0
	})
	t.Logf("window of %s: %d rounds, %d rounds with a node not Ready; first renewal seen %s after start; the apiserver served %d serving certificates",
		w.took.Round(time.Second), w.rounds, w.notReady, w.firstRenewal.Round(time.Second), len(w.apiserverSerials))
	if w.notReady > 0 {
		t.Errorf("a node was not Ready in %d rounds of the renewal window (logged above)", w.notReady)
	}

	checkRenewed(t, srv, srvLeaves, agent, agentLeaves)
	checkServed(t, endpoints, served)
	srv.WaitNodesReady(srv, 2)
	for _, pod := range pods {
		checkPod(t, srv, pod, &tl)
	}
	checkTopNode(t, srv)
	for i, sel := range selectors {
		if now := podName(srv, sel); now != pods[i] {
			t.Errorf("pod %s replaced by %s", pods[i], now)
		}
	}
	checkNoRestarts(t, srv)
	checkServerLog(t, srv, &tl)
	rotateAgent(t, srv, agent, pods[1])
	if code, _ := agent.Stop(30 * time.Second); code != 0 {
		t.Errorf("agent exit %d after SIGTERM", code)
	}
	if code, _ := srv.Stop(30 * time.Second); code != 0 {
		t.Errorf("server exit %d after SIGTERM", code)
	}
}

// serverLeaves are the server's leaf certificates, as certificate check
// lists them, and the admin kubeconfig's.
func serverLeaves(t *testing.T, srv *harness.Node) map[string]cert {
	t.Helper()
	certs, code := checkCerts(t, srv)
	if code != 0 {
		t.Errorf("certificate check on the server: exit %d", code)
	}
	out := leaves(certs)
	out["admin kubeconfig "+srv.Kubeconfig] = cert{File: srv.Kubeconfig, NotAfter: kubeconfigCert(t, srv.Kubeconfig).NotAfter}
	return out
}

// checkRenewed fails t unless every leaf of before, on the server and on
// the agent, has been re-issued and certificate check passes on both.
func checkRenewed(t *testing.T, srv *harness.Node, srvBefore map[string]cert, agent *harness.Node, agentBefore map[string]cert) {
	t.Helper()
	agentNow, code := checkCerts(t, agent)
	if code != 0 {
		t.Errorf("certificate check on the agent: exit %d", code)
	}
	for _, c := range []struct {
		name        string
		before, now map[string]cert
	}{{"server", srvBefore, serverLeaves(t, srv)}, {"agent", agentBefore, agentNow}} {
		if left := notRenewed(c.before, c.now); len(left) > 0 {
			t.Errorf("not re-issued on the %s: %s", c.name, strings.Join(left, "; "))
			continue
		}
		t.Logf("the %s's %d leaves all re-issued", c.name, len(c.before))
	}
}

// checkServed fails t unless each endpoint serves a certificate that
// outlives the one it served at first, and has not expired.
func checkServed(t *testing.T, endpoints []endpoint, first map[string]*x509.Certificate) {
	t.Helper()
	for _, e := range endpoints {
		old, ok := first[e.name]
		if !ok {
			continue
		}
		c, err := e.cert()
		switch {
		case err != nil:
			t.Errorf("%s (%s): %v", e.name, e.addr, err)
		case !c.NotAfter.After(old.NotAfter) || time.Now().After(c.NotAfter):
			t.Errorf("%s serves a certificate valid until %s; it served one until %s at first", e.name, c.NotAfter, old.NotAfter)
		}
	}
}

// checkPod runs kubectl logs and exec on pod: the apiserver's client
// certificate towards the kubelet, and the kubelet's serving one.
func checkPod(t *testing.T, srv *harness.Node, pod string, tl *tally) {
	t.Helper()
	var out string
	tl.try(t, "kubectl logs "+pod, func() (err error) {
		out, err = kubectl(srv, "logs", pod)
		return err
	})
	if !strings.Contains(out, "echo listening on :8080") {
		t.Errorf("kubectl logs %s = %q", pod, out)
	}
	tl.try(t, "kubectl exec "+pod, func() (err error) {
		out, err = kubectl(srv, "exec", pod, "--", "/echo", "echo-cmd", "hi")
		return err
	})
	if out != "hi\n" {
		t.Errorf("kubectl exec %s = %q", pod, out)
	}
}

// checkServerLog fails t unless the server logged renewals and no failed
// one, and reports what the failures tl counted coincide with.
func checkServerLog(t *testing.T, srv *harness.Node, tl *tally) {
	t.Helper()
	renewed, issued := srv.CountLogLines("renewed certificates"), srv.CountLogLines("issued certificate")
	failed := srv.CountLogLines("certificate renewal failed")
	detected := srv.CountLogLines("certificate rotation detected")
	mismatch := srv.CountLogLines("private key does not match public key")
	t.Logf("server log: %d \"renewed certificates\", %d \"issued certificate\", %d \"certificate renewal failed\", "+
		"%d \"certificate rotation detected\" (client-go), %d \"private key does not match public key\" (a reloader between the key and the certificate)",
		renewed, issued, failed, detected, mismatch)
	if renewed == 0 || failed > 0 {
		t.Errorf("want renewals and no failure in the server log:\n%s", srv.LogTail(40))
	}
	t.Logf("requests: %d, %d failed on a connection closed under them, %d failed otherwise", tl.requests, tl.closed, tl.failed)
	if tl.closed > 0 {
		t.Logf("client-go's lines about rotations in the server log (to compare with the failures' times above):\n%s",
			strings.Join(logLines(srv, "certificate rotation detected"), "\n"))
	}
	if tl.closed > maxClosed {
		t.Errorf("%d requests failed on a closed connection, want at most %d", tl.closed, maxClosed)
	}
}

// maxClosed is how many requests may fail on a connection closed under
// them. client-go closes the connections it made with a client
// certificate once it sees the certificate renewed, and a request that
// takes one of them at that moment fails with "use of closed network
// connection" (upstream reports the same error next to the apiserver's
// "certificate rotation detected, shutting down client connections":
// kubernetes/kops#16850). With renewals every two minutes a few such
// races may happen in the test's ten minutes; each is logged with its
// time and tried once more.
const maxClosed = 3

// tally counts the requests a test makes and how they failed.
type tally struct {
	requests, closed, failed int
}

// try runs req; a failure on a connection closed under it is counted,
// logged and tried once more; any other failure fails t.
func (tl *tally) try(t *testing.T, what string, req func() error) {
	t.Helper()
	for attempt := 0; attempt < 2; attempt++ {
		tl.requests++
		err := req()
		switch {
		case err == nil:
			return
		case strings.Contains(err.Error(), "use of closed network connection"):
			tl.closed++
			t.Logf("%s: %s: %v", time.Now().Format(time.TimeOnly+".000"), what, err)
		default:
			tl.failed++
			t.Errorf("%s: %s: %v", time.Now().Format(time.TimeOnly+".000"), what, err)
			return
		}
	}
}

// kubectl runs kubectl with srv's admin kubeconfig in srv; a failure
// returns its stderr.
func kubectl(srv *harness.Node, args ...string) (string, error) {
	r := srv.Exec(time.Minute, harness.Options{}, append([]string{"kubectl", "--kubeconfig", srv.Kubeconfig}, args...)...)
	if r.Code != 0 {
		return r.Stdout, fmt.Errorf("exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
	}
	return r.Stdout, nil
}

// logLines are the lines of n's log holding sub.
func logLines(n *harness.Node, sub string) []string {
	data, _ := os.ReadFile(n.LogPath)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// keepLogs copies the nodes' logs to dir if t fails (kept with go test
// -artifacts).
func keepLogs(t *testing.T, dir string, nodes ...*harness.Node) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, n := range nodes {
			data, err := os.ReadFile(n.LogPath)
			if err != nil {
				continue
			}
			dst := filepath.Join(dir, fmt.Sprintf("node%d-%s.log", i, n.NS.Name))
			if err := os.WriteFile(dst, data, 0o644); err == nil {
				t.Logf("log of %s kept at %s", n.NS.Name, dst)
			}
		}
	})
}

// rotateCommand: `certificate rotate` re-issues the leaves of the named
// services on a running server, which serves them at once; refuses an
// unknown service; and on a stopped server leaves the request for its
// next start.
func rotateCommand(t *testing.T) {
	t.Parallel()
	srv := harness.NewNode(t, harness.NewNetwork(t), 2)
	args := []string{"--node-name", serverName, "--disable", "local-storage,metrics-server"}
	srv.StartServer(args...)
	srv.WaitReadyz(2 * time.Minute)
	tlsDir := filepath.Join(srv.DataDir, "server", "tls")
	rotateRunning(t, srv, tlsDir)
	rotateBogus(t, srv, tlsDir)
	rotateStopped(t, srv, tlsDir, args)
	if code, _ := srv.Stop(time.Minute); code != 0 {
		t.Errorf("server exit %d after SIGTERM", code)
	}
}

// rotateRunning: etcd and kube-apiserver's leaves, and only those, are
// re-issued on the running server, which serves them and keeps working.
func rotateRunning(t *testing.T, srv *harness.Node, tlsDir string) {
	t.Helper()
	before := fileCerts(t, tlsDir)
	start := time.Now()
	r := srv.Exec(2*time.Minute, harness.Options{}, "certificate", "rotate", "--data-dir", srv.DataDir, "--service", "etcd,kube-apiserver")
	if r.Code != 0 {
		t.Fatalf("certificate rotate: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	returned := time.Now()
	t.Logf("certificate rotate --service etcd,kube-apiserver answered in %s", returned.Sub(start).Round(time.Millisecond))
	want := []string{"client-kube-apiserver.crt", "etcd/client.crt", "etcd/peer-server-client.crt",
		"etcd/server-client.crt", "serving-kube-apiserver.crt"}
	after := fileCerts(t, tlsDir)
	if got := changed(before, after); !slices.Equal(got, want) {
		t.Errorf("re-issued %v, want %v", got, want)
	}
	if got := issuedLines(t, r.Stdout, tlsDir); !slices.Equal(got, want) {
		t.Errorf("rotate printed issued %v, want %v:\n%s", got, want, r.Stdout)
	}
	for _, file := range []string{"serving-kube-apiserver.crt", "etcd/server-client.crt", "etcd/peer-server-client.crt"} {
		e := map[string]endpoint{
			"serving-kube-apiserver.crt":  {"kube-apiserver", srv, srv.NS.IP + ":6443"},
			"etcd/server-client.crt":      {"etcd", srv, "127.0.0.1:2379"},
			"etcd/peer-server-client.crt": {"etcd peer", srv, srv.NS.IP + ":2380"},
		}[file]
		srv.WaitFor(2*time.Minute, e.name+" serving the new "+file, func(context.Context) (bool, error) {
			c, err := e.cert()
			return err == nil && c.SerialNumber.Cmp(after[file].SerialNumber) == 0, err
		})
		t.Logf("%s serves its new certificate %s after rotate returned (at most)", e.name, time.Since(returned).Round(time.Millisecond))
	}
	srv.WaitReadyz(time.Minute)
	srv.Kubectl("create", "configmap", "after-rotate")
	if out := srv.Kubectl("get", "configmap", "after-rotate", "-o", "name"); out != "configmap/after-rotate\n" {
		t.Errorf("kubectl get configmap = %q", out)
	}
	if n := srv.CountLogLines("rotated certificates on request", "services=etcd,kube-apiserver"); n != 1 {
		t.Errorf("%d log lines of the rotation, want 1:\n%s", n, srv.LogTail(20))
	}
}

// rotateBogus: an unknown service is refused, listing the services, and
// nothing is asked of the server.
func rotateBogus(t *testing.T, srv *harness.Node, tlsDir string) {
	t.Helper()
	before := fileCerts(t, tlsDir)
	r := srv.Exec(time.Minute, harness.Options{}, "certificate", "rotate", "--data-dir", srv.DataDir, "--service", "bogus")
	if r.Code == 0 || !strings.Contains(r.Stderr, `"bogus"`) || !strings.Contains(r.Stderr, "kube-scheduler") {
		t.Errorf("rotate --service bogus: exit %d, want a refusal naming bogus and listing the services:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(tlsDir, "rotate-request.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a request left behind: %v", err)
	}
	if got := changed(before, fileCerts(t, tlsDir)); len(got) > 0 {
		t.Errorf("rotate --service bogus re-issued %v", got)
	}
}

// rotateStopped: on a stopped server the request waits, and the next
// start re-issues kube-scheduler's leaves and no other.
func rotateStopped(t *testing.T, srv *harness.Node, tlsDir string, args []string) {
	t.Helper()
	if code, _ := srv.Stop(time.Minute); code != 0 {
		t.Fatalf("server exit %d after SIGTERM", code)
	}
	before := fileCerts(t, tlsDir)
	r := srv.Exec(time.Minute, harness.Options{}, "certificate", "rotate", "--data-dir", srv.DataDir, "--service", "kube-scheduler")
	if want := "no server runs on " + srv.DataDir + ": it re-issues the certificates of kube-scheduler at its next start"; r.Code != 0 || !strings.Contains(r.Stdout, want) {
		t.Fatalf("rotate on a stopped server: exit %d, want 0 and %q:\n%s%s", r.Code, want, r.Stdout, r.Stderr)
	}
	if got := changed(before, fileCerts(t, tlsDir)); len(got) > 0 {
		t.Errorf("re-issued %v while the server was stopped", got)
	}
	srv.StartServer(args...)
	srv.WaitReadyz(2 * time.Minute)
	want := []string{"client-scheduler.crt", "serving-kube-scheduler.crt"}
	if got := changed(before, fileCerts(t, tlsDir)); !slices.Equal(got, want) {
		t.Errorf("the start re-issued %v, want %v", got, want)
	}
	if n := srv.CountLogLines("rotated certificates on request", "services=kube-scheduler"); n != 1 {
		t.Errorf("%d log lines of the rotation at start, want 1:\n%s", n, srv.LogTail(20))
	}
	if _, err := os.Stat(filepath.Join(tlsDir, "rotate-request.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the request is still there after the start: %v", err)
	}
}

// cert is one certificate as `monokube certificate check -o json` lists it.
type cert struct {
	File     string    `json:"file"`
	Subject  string    `json:"subject"`
	CA       bool      `json:"ca"`
	NotAfter time.Time `json:"notAfter"`
	Status   string    `json:"status"`
}

// checkCerts runs `certificate check -o json` on n and returns its
// certificates by file and subject, and its exit code.
func checkCerts(t *testing.T, n *harness.Node) (map[string]cert, int) {
	t.Helper()
	r := n.Exec(time.Minute, harness.Options{}, "certificate", "check", "--data-dir", n.DataDir, "-o", "json")
	var list []cert
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil {
		t.Fatalf("certificate check: exit %d, output not JSON (%v):\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	if r.Code != 0 {
		t.Logf("certificate check on %s: exit %d: %s", n.NS.Name, r.Code, r.Stderr)
	}
	out := map[string]cert{}
	for _, c := range list {
		out[c.File+" "+c.Subject] = c
	}
	return out, r.Code
}

// leaves are the certificates of certs that are no CA.
func leaves(certs map[string]cert) map[string]cert {
	out := maps.Clone(certs)
	maps.DeleteFunc(out, func(_ string, c cert) bool { return c.CA })
	return out
}

// latest is when the last of certs expires.
func latest(certs map[string]cert) time.Time {
	var last time.Time
	for _, c := range certs {
		if c.NotAfter.After(last) {
			last = c.NotAfter
		}
	}
	return last
}

// notRenewed lists the certificates of before that now holds with no
// later expiry.
func notRenewed(before, now map[string]cert) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if c, ok := now[k]; !ok || !c.NotAfter.After(before[k].NotAfter) {
			out = append(out, fmt.Sprintf("%s (until %s, now %v)", k, before[k].NotAfter.Format(time.TimeOnly), c.NotAfter.Format(time.TimeOnly)))
		}
	}
	return out
}

// checkShortLived fails t unless every leaf lives the test's lifetime
// from about the server's start: what certificate check shows.
func checkShortLived(t *testing.T, certs map[string]cert, started time.Time) {
	t.Helper()
	for k, c := range certs {
		if left := c.NotAfter.Sub(started); left > lifetime+time.Minute || left < lifetime-2*time.Minute {
			t.Errorf("%s expires %s after the server's start, want about %s", k, left.Round(time.Second), lifetime)
		}
	}
}

// kubeconfigCert is the client certificate embedded in the kubeconfig
// at path, for its current context.
func kubeconfigCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok || cfg.AuthInfos[ctx.AuthInfo] == nil {
		t.Fatalf("%s: no user for context %q", path, cfg.CurrentContext)
	}
	return parseCert(t, path, cfg.AuthInfos[ctx.AuthInfo].ClientCertificateData)
}

func parseCert(t *testing.T, file string, data []byte) *x509.Certificate {
	t.Helper()
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			return c
		}
	}
	t.Fatalf("%s: no certificate", file)
	return nil
}

// fileCerts reads the certificate of every *.crt file under dir, by path
// relative to dir.
func fileCerts(t *testing.T, dir string) map[string]*x509.Certificate {
	t.Helper()
	out := map[string]*x509.Certificate{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".crt") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = parseCert(t, p, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changed lists, sorted, the files of before whose certificate after has
// with another serial number, or not at all.
func changed(before, after map[string]*x509.Certificate) []string {
	var out []string
	for _, f := range slices.Sorted(maps.Keys(before)) {
		if a, ok := after[f]; !ok || a.SerialNumber.Cmp(before[f].SerialNumber) != 0 {
			out = append(out, f)
		}
	}
	return out
}

// issuedLines are the files of the "issued <file>" lines of rotate's
// output, relative to dir, sorted.
func issuedLines(t *testing.T, stdout, dir string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(stdout, "\n") {
		if f, ok := strings.CutPrefix(line, "issued "); ok {
			rel, err := filepath.Rel(dir, f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return out
}

// endpoint is a TLS port of a component, reached from inside a node.
type endpoint struct {
	name string
	n    *harness.Node
	addr string
}

// cert is the certificate the endpoint serves now. It is only read,
// never trusted: the test compares it with the files.
func (e endpoint) cert() (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := e.n.NS.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	if peer := conn.ConnectionState().PeerCertificates; len(peer) > 0 {
		return peer[0], nil
	}
	return nil, errors.New("no certificate served")
}

// servedCerts are the certificates the endpoints serve now, by name; one
// that cannot be reached is logged and left out.
func servedCerts(t *testing.T, endpoints []endpoint) map[string]*x509.Certificate {
	t.Helper()
	out := map[string]*x509.Certificate{}
	for _, e := range endpoints {
		c, err := e.cert()
		if err != nil {
			t.Logf("%s (%s) not checked: %v", e.name, e.addr, err)
			continue
		}
		out[e.name] = c
	}
	return out
}

// waitFile waits until path exists on n.
func waitFile(n *harness.Node, path string) {
	n.WaitFor(2*time.Minute, path, func(context.Context) (bool, error) {
		_, err := os.Stat(path)
		return err == nil, err
	})
}

func podName(n *harness.Node, selector string) string {
	return strings.TrimPrefix(strings.TrimSpace(n.Kubectl("get", "pods", "-l", selector, "-o", "name")), "pod/")
}

// window is what useCluster saw.
type window struct {
	took, firstRenewal time.Duration
	rounds, notReady   int
	apiserverSerials   map[string]bool
}

// useCluster uses the cluster every 30 s until until has passed and done
// reports true (at most 3 minutes longer): lists the nodes with a client
// made afresh from the admin kubeconfig, runs kubectl get nodes and
// kubectl logs of the pods (the apiserver's client certificate towards
// both kubelets), and notes the apiserver's serving certificate and the
// first renewal in the server's log.
func useCluster(t *testing.T, srv, agent *harness.Node, pods []string, tl *tally, started, until time.Time, done func() bool) window {
	t.Helper()
	w := window{apiserverSerials: map[string]bool{}}
	begin := time.Now()
	apiserver := endpoint{"kube-apiserver", srv, srv.NS.IP + ":6443"}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	finished := false
	for w.rounds < 40 && time.Now().Before(until.Add(3*time.Minute)) {
		w.rounds++
		var ready []string
		tl.try(t, "client-go list nodes", func() (err error) {
			ready, err = nodesReady(srv)
			return err
		})
		if len(ready) != 2 {
			w.notReady++
			t.Logf("round %d: nodes Ready: %v", w.rounds, ready)
		}
		tl.try(t, "kubectl get nodes", func() error {
			_, err := kubectl(srv, "get", "nodes", "-o", "name")
			return err
		})
		for _, pod := range pods {
			tl.try(t, "kubectl logs "+pod, func() error {
				_, err := kubectl(srv, "logs", pod, "--tail", "1")
				return err
			})
		}
		if c, err := apiserver.cert(); err == nil {
			w.apiserverSerials[c.SerialNumber.String()] = true
		}
		if w.firstRenewal == 0 && srv.CountLogLines("renewed certificates") > 0 {
			w.firstRenewal = time.Since(started)
		}
		select {
		case <-srv.Exited():
			t.Fatalf("server exited:\n%s", srv.LogTail(40))
		case <-agent.Exited():
			t.Fatalf("agent exited:\n%s", agent.LogTail(40))
		default:
		}
		if finished = time.Now().After(until) && done(); finished {
			break
		}
		<-tick.C
	}
	w.took = time.Since(begin)
	if !finished {
		t.Errorf("gave up using the cluster after %d rounds (%s): not every certificate of the agent renewed", w.rounds, w.took)
	}
	return w
}

// nodesReady lists the nodes with a client made afresh from srv's admin
// kubeconfig as it is on disk now, and returns those Ready.
func nodesReady(srv *harness.Node) ([]string, error) {
	c, err := srv.FreshClient()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var ready []string
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = append(ready, n.Name)
			}
		}
	}
	return ready, nil
}

// checkTopNode waits (up to 2 minutes) for `kubectl top node` to list
// both nodes: the aggregator reaches metrics-server, which scrapes both
// kubelets.
func checkTopNode(t *testing.T, srv *harness.Node) {
	t.Helper()
	start := time.Now()
	var last harness.Result
	for i := 0; i < 24 && time.Since(start) < 2*time.Minute; i++ {
		last = srv.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", srv.Kubeconfig, "top", "node")
		if last.Code == 0 && strings.Contains(last.Stdout, serverName) && strings.Contains(last.Stdout, agentName) {
			t.Logf("kubectl top node answered after %s:\n%s", time.Since(start).Round(time.Second), last.Stdout)
			return
		}
		time.Sleep(5 * time.Second)
	}
	t.Errorf("kubectl top node: exit %d after %s:\n%s%s", last.Code, time.Since(start).Round(time.Second), last.Stdout, last.Stderr)
}

// checkNoRestarts fails t for every container of the cluster that has
// restarted.
func checkNoRestarts(t *testing.T, srv *harness.Node) {
	t.Helper()
	pods, err := srv.Client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		for _, s := range p.Status.ContainerStatuses {
			if s.RestartCount != 0 {
				t.Errorf("%s/%s container %s restarted %d times (last: %+v)", p.Namespace, p.Name, s.Name, s.RestartCount, s.LastTerminationState.Terminated)
			}
		}
	}
	t.Logf("%d pods, no container restarted unless listed above", len(pods.Items))
}

// rotateAgent runs `certificate rotate` on the agent: its kubelet's client
// and serving certificates are re-issued through the cluster, and after a
// restart of the agent its kubelet serves the new one, its pod kept.
func rotateAgent(t *testing.T, srv, agent *harness.Node, pod string) {
	t.Helper()
	pki := filepath.Join(agent.DataDir, "agent", "kubelet", "pki")
	read := func(name string) *x509.Certificate {
		data, err := os.ReadFile(filepath.Join(pki, name))
		if err != nil {
			t.Fatal(err)
		}
		return parseCert(t, name, data)
	}
	before := map[string]*x509.Certificate{}
	for _, f := range []string{"kubelet-client-current.pem", "kubelet-server-current.pem"} {
		before[f] = read(f)
	}
	r := agent.Exec(2*time.Minute, harness.Options{}, "certificate", "rotate", "--data-dir", agent.DataDir)
	if r.Code != 0 {
		t.Fatalf("certificate rotate on the agent: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("certificate rotate on the agent:\n%s", r.Stdout)
	for f, old := range before {
		if now := read(f); now.SerialNumber.Cmp(old.SerialNumber) == 0 || !strings.Contains(r.Stdout, f) {
			t.Errorf("%s not re-issued, or not named in the output", f)
		}
	}
	if code, _ := agent.Stop(30 * time.Second); code != 0 {
		t.Errorf("agent exit %d after SIGTERM", code)
	}
	agent.StartAgent(srv, "", agentName)
	// The Node stays Ready from before the restart for a while: wait for
	// the kubelet itself to serve.
	var served *x509.Certificate
	agent.WaitFor(2*time.Minute, "the restarted kubelet serving", func(context.Context) (bool, error) {
		var err error
		served, err = endpoint{"agent's kubelet", agent, agent.NS.IP + ":10250"}.cert()
		return err == nil, err
	})
	if served.SerialNumber.Cmp(read("kubelet-server-current.pem").SerialNumber) != 0 {
		t.Errorf("after the restart the agent's kubelet serves serial %s, want the re-issued certificate's", served.SerialNumber)
	}
	agent.WaitNodesReady(srv, 2)
	srv.WaitRunning(2*time.Minute, "app=on-agent", 1)
	// A restarted kubelet answers "pod does not exist" until it has read
	// its pods back from containerd.
	var out string
	srv.WaitFor(time.Minute, "exec into the agent's pod after the rotation", func(context.Context) (bool, error) {
		var err error
		out, err = kubectl(srv, "exec", pod, "--", "/echo", "echo-cmd", "hi")
		return err == nil, err
	})
	if out != "hi\n" {
		t.Errorf("exec into the agent's pod after the rotation: %q", out)
	}
	if now := podName(srv, "app=on-agent"); now != pod {
		t.Errorf("the agent's pod %s was replaced by %s", pod, now)
	}
}
