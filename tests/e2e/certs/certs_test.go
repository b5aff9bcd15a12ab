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
	"k8s.io/client-go/kubernetes"
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
	srv := harness.NewNode(t, network, 2)
	srv.Env = []string{"MONOKUBE_TEST_CERT_LIFETIME=" + lifetime.String()}
	srv.StageImages(nil)
	started := time.Now()
	srv.StartServerNode("--node-name", serverName, "--disable", "local-storage",
		"--kube-controller-manager-arg", "cluster-signing-duration="+lifetime.String())
	srv.WaitReadyz(2 * time.Minute)
	srv.WaitNodeReady(3 * time.Minute)
	t.Logf("server start to node Ready: %s", time.Since(started))
	srvCerts, code := checkCerts(t, srv)
	if code != 0 {
		t.Fatalf("certificate check on the fresh server: exit %d", code)
	}
	srvLeaves := leaves(srvCerts)
	srvLeaves["admin kubeconfig "+srv.Kubeconfig] = cert{File: srv.Kubeconfig, NotAfter: kubeconfigCert(t, srv.Kubeconfig).NotAfter}
	checkShortLived(t, srvLeaves, started)

	agent := harness.NewNode(t, network, 3)
	agent.StageImages(nil)
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

	// Until every leaf the nodes started with has expired, plus a minute.
	until := latest(srvLeaves).Add(time.Minute)
	t.Logf("server leaves recorded %s after start; the last expires %s after start; using the cluster until %s after start",
		time.Since(started).Round(time.Second), latest(srvLeaves).Sub(started).Round(time.Second), until.Sub(started).Round(time.Second))
	w := useCluster(t, srv, agent, pods[1], started, until, func() bool {
		now, _ := checkCerts(t, agent)
		return len(notRenewed(agentLeaves, leaves(now))) == 0
	})
	t.Logf("window of %s: %d rounds; failures: %d client-go, %d kubectl, %d kubectl logs (agent pod), %d rounds with a node not Ready; "+
		"first renewal seen %s after start; the apiserver served %d serving certificates",
		w.took.Round(time.Second), w.rounds, w.apiFails, w.kubectlFails, w.logsFails, w.notReady, w.firstRenewal.Round(time.Second), len(w.apiserverSerials))
	if w.apiFails+w.kubectlFails+w.logsFails+w.notReady > 0 {
		t.Errorf("the cluster failed in the renewal window (details logged above): %d client-go, %d kubectl, %d logs, %d not Ready",
			w.apiFails, w.kubectlFails, w.logsFails, w.notReady)
	}

	t.Run("every certificate re-issued, and certificate check passes", func(t *testing.T) {
		for _, c := range []struct {
			n      *harness.Node
			before map[string]cert
		}{{srv, srvLeaves}, {agent, agentLeaves}} {
			now, code := checkCerts(t, c.n)
			if code != 0 {
				t.Errorf("certificate check on %s: exit %d", c.n.NS.Name, code)
			}
			if c.n == srv {
				now["admin kubeconfig "+srv.Kubeconfig] = cert{File: srv.Kubeconfig, NotAfter: kubeconfigCert(t, srv.Kubeconfig).NotAfter}
			}
			if left := notRenewed(c.before, now); len(left) > 0 {
				t.Errorf("not re-issued on %s: %s", c.n.NS.Name, strings.Join(left, "; "))
			}
			t.Logf("%s: %d leaves, all re-issued", c.n.NS.Name, len(c.before))
		}
	})
	t.Run("every component serves its new certificate", func(t *testing.T) {
		for _, e := range endpoints {
			old, ok := served[e.name]
			if !ok {
				continue
			}
			c, err := e.cert()
			switch {
			case err != nil:
				t.Errorf("%s (%s): %v", e.name, e.addr, err)
			case !c.NotAfter.After(old.NotAfter) || time.Now().After(c.NotAfter):
				t.Errorf("%s serves a certificate valid until %s, it served one until %s at first", e.name, c.NotAfter, old.NotAfter)
			}
		}
	})
	t.Run("both nodes Ready", func(t *testing.T) { srv.WaitNodesReady(srv, 2) })
	t.Run("logs and exec on both nodes' pods", func(t *testing.T) {
		for _, pod := range pods {
			if out := srv.Kubectl("logs", pod); !strings.Contains(out, "echo listening on :8080") {
				t.Errorf("kubectl logs %s = %q", pod, out)
			}
			if out := srv.Kubectl("exec", pod, "--", "/echo", "echo-cmd", "hi"); out != "hi\n" {
				t.Errorf("kubectl exec %s = %q", pod, out)
			}
		}
	})
	t.Run("kubectl top node", func(t *testing.T) { checkTopNode(t, srv) })
	t.Run("no container restarted", func(t *testing.T) {
		for i, sel := range selectors {
			if now := podName(srv, sel); now != pods[i] {
				t.Errorf("pod %s replaced by %s", pods[i], now)
			}
		}
		checkNoRestarts(t, srv)
	})
	t.Run("server log", func(t *testing.T) {
		renewed, issued := srv.CountLogLines("renewed certificates"), srv.CountLogLines("issued certificate")
		failed := srv.CountLogLines("certificate renewal failed")
		t.Logf("server log: %d \"renewed certificates\", %d \"issued certificate\", %d \"certificate renewal failed\"", renewed, issued, failed)
		if renewed == 0 || failed > 0 {
			t.Errorf("want renewals and no failure in the server log:\n%s", srv.LogTail(40))
		}
	})
	t.Run("rotate on an agent is refused", func(t *testing.T) {
		r := agent.Exec(time.Minute, harness.Options{}, "certificate", "rotate", "--data-dir", agent.DataDir)
		if r.Code == 0 || !strings.Contains(r.Stderr, "no server in data dir") {
			t.Errorf("certificate rotate on the agent: exit %d, want a refusal saying no server in data dir:\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
	})
	if code, _ := agent.Stop(30 * time.Second); code != 0 {
		t.Errorf("agent exit %d after SIGTERM", code)
	}
	if code, _ := srv.Stop(30 * time.Second); code != 0 {
		t.Errorf("server exit %d after SIGTERM", code)
	}
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

	t.Run("etcd and kube-apiserver on a running server", func(t *testing.T) {
		before := fileCerts(t, tlsDir)
		r := srv.Exec(2*time.Minute, harness.Options{}, "certificate", "rotate", "--data-dir", srv.DataDir, "--service", "etcd,kube-apiserver")
		if r.Code != 0 {
			t.Fatalf("certificate rotate: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		want := []string{"client-kube-apiserver.crt", "etcd/client.crt", "etcd/peer-server-client.crt",
			"etcd/server-client.crt", "serving-kube-apiserver.crt"}
		after := fileCerts(t, tlsDir)
		if got := changed(before, after); !slices.Equal(got, want) {
			t.Errorf("re-issued %v, want %v", got, want)
		}
		if got := issuedLines(t, r.Stdout, tlsDir); !slices.Equal(got, want) {
			t.Errorf("rotate printed issued %v, want %v:\n%s", got, want, r.Stdout)
		}
		for name, e := range map[string]endpoint{
			"serving-kube-apiserver.crt":  {"kube-apiserver", srv, srv.NS.IP + ":6443"},
			"etcd/server-client.crt":      {"etcd", srv, "127.0.0.1:2379"},
			"etcd/peer-server-client.crt": {"etcd peer", srv, srv.NS.IP + ":2380"},
		} {
			took := srv.WaitFor(2*time.Minute, e.name+" serving the new "+name, func(context.Context) (bool, error) {
				c, err := e.cert()
				return err == nil && c.SerialNumber.Cmp(after[name].SerialNumber) == 0, err
			})
			t.Logf("%s serves its new certificate %s after the rotation", e.name, took.Round(time.Millisecond))
		}
		srv.WaitReadyz(time.Minute)
		srv.Kubectl("create", "configmap", "after-rotate")
		if out := srv.Kubectl("get", "configmap", "after-rotate", "-o", "name"); out != "configmap/after-rotate\n" {
			t.Errorf("kubectl get configmap = %q", out)
		}
		if n := srv.CountLogLines("rotated certificates on request", "services=etcd,kube-apiserver"); n != 1 {
			t.Errorf("%d log lines of the rotation, want 1:\n%s", n, srv.LogTail(20))
		}
	})
	t.Run("an unknown service is refused", func(t *testing.T) {
		before := fileCerts(t, tlsDir)
		r := srv.Exec(time.Minute, harness.Options{}, "certificate", "rotate", "--data-dir", srv.DataDir, "--service", "bogus")
		if r.Code == 0 || !strings.Contains(r.Stderr, `"bogus"`) || !strings.Contains(r.Stderr, "kube-scheduler") {
			t.Errorf("exit %d, want a refusal naming bogus and listing the services:\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		if _, err := os.Stat(filepath.Join(tlsDir, "rotate-request.json")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a request left behind: %v", err)
		}
		if got := changed(before, fileCerts(t, tlsDir)); len(got) > 0 {
			t.Errorf("re-issued %v", got)
		}
	})
	t.Run("kube-scheduler on a stopped server, at its next start", func(t *testing.T) {
		if code, _ := srv.Stop(time.Minute); code != 0 {
			t.Fatalf("server exit %d after SIGTERM", code)
		}
		before := fileCerts(t, tlsDir)
		r := srv.Exec(time.Minute, harness.Options{}, "certificate", "rotate", "--data-dir", srv.DataDir, "--service", "kube-scheduler")
		if want := "no server runs on " + srv.DataDir + ": it re-issues the certificates of kube-scheduler at its next start"; r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Fatalf("exit %d, want 0 and %q:\n%s%s", r.Code, want, r.Stdout, r.Stderr)
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
	})
	if code, _ := srv.Stop(time.Minute); code != 0 {
		t.Errorf("server exit %d after SIGTERM", code)
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
	took, firstRenewal             time.Duration
	rounds, apiFails, kubectlFails int
	logsFails, notReady            int
	apiserverSerials               map[string]bool
}

// useCluster uses the cluster every 30 s until until has passed and done
// reports true (at most 3 minutes longer): lists the nodes with a client
// made afresh from the admin kubeconfig, runs kubectl get nodes and
// kubectl logs of the agent's pod, and notes the apiserver's serving
// certificate and the first renewal in the server's log.
func useCluster(t *testing.T, srv, agent *harness.Node, agentPod string, started, until time.Time, done func() bool) window {
	t.Helper()
	w := window{apiserverSerials: map[string]bool{}}
	begin := time.Now()
	apiserver := endpoint{"kube-apiserver", srv, srv.NS.IP + ":6443"}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	finished := false
	for w.rounds < 40 && time.Now().Before(until.Add(3*time.Minute)) {
		w.rounds++
		if err := nodesReady(srv, 2); errors.Is(err, errNotReady) {
			w.notReady++
			t.Logf("round %d: %v", w.rounds, err)
		} else if err != nil {
			w.apiFails++
			t.Logf("round %d: client-go: %v", w.rounds, err)
		}
		kubectl := []string{"kubectl", "--kubeconfig", srv.Kubeconfig}
		if r := srv.Exec(time.Minute, harness.Options{}, append(kubectl, "get", "nodes", "-o", "name")...); r.Code != 0 {
			w.kubectlFails++
			t.Logf("round %d: kubectl get nodes: exit %d: %s", w.rounds, r.Code, r.Stderr)
		}
		if r := srv.Exec(time.Minute, harness.Options{}, append(kubectl, "logs", agentPod, "--tail", "1")...); r.Code != 0 {
			w.logsFails++
			t.Logf("round %d: kubectl logs %s: exit %d: %s", w.rounds, agentPod, r.Code, r.Stderr)
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
		t.Errorf("gave up using the cluster after %d rounds (%s): not every certificate renewed", w.rounds, w.took)
	}
	return w
}

var errNotReady = errors.New("not Ready")

// nodesReady lists the nodes with a client made afresh from srv's admin
// kubeconfig as it is on disk now, and says whether want are Ready.
func nodesReady(srv *harness.Node, want int) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", srv.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.Dial, cfg.Timeout = srv.NS.DialContext, 10*time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var ready []string
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = append(ready, n.Name)
			}
		}
	}
	if len(ready) != want {
		return fmt.Errorf("%w: %v of %d nodes", errNotReady, ready, len(nodes.Items))
	}
	return nil
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
