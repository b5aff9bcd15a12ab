//go:build e2e

// Package mirror_test runs a server and two agents with the embedded
// registry mirror (--embedded-registry) and checks that an image imported
// on the server alone runs on every node, with imagePullPolicy
// IfNotPresent and Always, pulled from a peer (as the peer's log shows);
// that only the cluster's nodes may read a mirror; that a tampered blob
// is never served (the pull goes to another node); and that turning the
// mirror off on the server stops it on every node.
package mirror_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"github.com/monokube/monokube/tests/harness"
)

const mirrorPort = "5001"

func TestEmbeddedRegistry(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	network := harness.NewNetwork(t)
	srv := harness.NewNode(t, network, 2)
	srvArgs := []string{"--node-name", "server-1", "--disable", "local-storage,metrics-server"}
	srv.StartServerNode(append(srvArgs, "--embedded-registry")...)
	srv.WaitReadyz(2 * time.Minute)
	token := srv.JoinToken()
	agents := []*harness.Node{harness.NewNode(t, network, 3), harness.NewNode(t, network, 4)}
	for i, a := range agents {
		a.StartAgent(srv, token, fmt.Sprintf("agent-%d", i+1))
	}
	agents[0].WaitNodesReady(srv, 3)
	nodes := append([]*harness.Node{srv}, agents...)

	// The echo image's tarball is on the server alone, imported by hand.
	tarball, err := filepath.Abs(filepath.Join(testImages(), "echo.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if r := srv.Exec(2*time.Minute, srv.Local(), "images", "import", tarball); r.Code != 0 || !strings.Contains(r.Stdout, "imported "+harness.EchoImage) {
		t.Fatalf("monokube images import: exit %d, stdout %q\n%s", r.Code, r.Stdout, r.Stderr)
	}

	t.Run("IfNotPresent: runs on every node", func(t *testing.T) { runEverywhere(t, srv, "if-not-present", "IfNotPresent") })
	t.Run("the agents pulled from a peer", func(t *testing.T) {
		for _, name := range []string{"agent-1", "agent-2"} {
			if !servedTo(nodes, name) {
				t.Errorf("no mirror logged a blob served to %s:\n%s", name, srv.LogTail(40))
			}
		}
	})
	t.Run("Always: resolves against the peers", func(t *testing.T) { runEverywhere(t, srv, "always", "Always") })
	t.Run("images ls shows every node holding the image", func(t *testing.T) {
		r := agents[0].Exec(time.Minute, agents[0].Local(), "images", "ls")
		if r.Code != 0 {
			t.Fatalf("monokube images ls: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		for _, image := range []string{harness.EchoImage, "monokube.local/pause:"} {
			if line := lineWith(r.Stdout, image); !strings.Contains(line, "agent-1,agent-2,server-1") {
				t.Errorf("images ls: %s on %q, want all three nodes\n%s", image, line, r.Stdout)
			}
		}
	})
	t.Run("only the cluster's nodes may read a mirror", func(t *testing.T) { checkRefusals(t, srv, agents[0]) })
	t.Run("a tampered blob is not served: the pull goes to another node", func(t *testing.T) { checkTamper(t, srv, agents) })
	t.Run("a node whose embedded pause image is gone gets it from a peer", func(t *testing.T) { checkPauseRecovered(t, srv, nodes, agents[1]) })
	t.Run("off: nothing listens", func(t *testing.T) {
		if code, took := srv.Stop(30 * time.Second); code != 0 {
			t.Fatalf("server exit %d after SIGTERM (%s)", code, took)
		}
		srv.StartServerNode(srvArgs...)
		srv.WaitReadyz(2 * time.Minute)
		// Each node restarted without the mirror: no listener, and
		// containerd back on its default registry hosts.
		srv.WaitFor(3*time.Minute, "no node's mirror answering or configured", func(ctx context.Context) (bool, error) {
			for _, n := range nodes {
				if harness.Answers(ctx, n, mirrorPort) {
					return false, fmt.Errorf("%s still answers on %s", n.NS.IP, mirrorPort)
				}
				if _, err := os.Stat(filepath.Join(n.DataDir, "agent", "etc", "registry-hosts")); !os.IsNotExist(err) {
					return false, fmt.Errorf("%s: the registry hosts configuration is still there (%w)", n.NS.IP, err)
				}
			}
			return true, nil
		})
		agents[0].WaitNodesReady(srv, 3)
		for _, a := range agents {
			if got := len(a.LogLinesSince("restarting the node to follow it", time.Time{})); got != 1 {
				t.Errorf("agent %s followed the mirror's change %d times, want once", a.NS.IP, got)
			}
		}
	})
}

func testImages() string {
	if dir := os.Getenv("MONOKUBE_TEST_IMAGES"); dir != "" {
		return dir
	}
	return "../../../build/test-images"
}

// runEverywhere runs a Deployment of the echo image spread one pod per
// node, with the given pull policy, and waits for all three.
func runEverywhere(t *testing.T, srv *harness.Node, name, policy string) {
	path := filepath.Join(t.TempDir(), name+".yaml")
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: 3
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: %[1]s}}}
      containers:
      - name: echo
        image: %[2]s
        imagePullPolicy: %[3]s
`, name, harness.EchoImage, policy)
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Kubectl("apply", "-f", path)
	took := srv.WaitRunning(3*time.Minute, "app="+name, 3)
	on := srv.Kubectl("get", "pods", "-l", "app="+name, "-o", "jsonpath={range .items[*]}{.spec.nodeName} {end}")
	for _, n := range []string{"server-1", "agent-1", "agent-2"} {
		if !strings.Contains(on, n+" ") {
			t.Errorf("%s pods on %q, want one on %s", name, on, n)
		}
	}
	t.Logf("%s: 3 pods Running in %s", policy, took)
}

// servedTo reports whether a mirror of nodes logged serving a blob to node.
func servedTo(nodes []*harness.Node, node string) bool {
	return slices.ContainsFunc(nodes, func(n *harness.Node) bool { return n.MirrorServedBlob(node) })
}

func lineWith(out, sub string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// mirrorGet asks n's mirror for path with the client certificate cert
// (none if nil), verifying it with the kubelet-serving CA; it returns the
// status and body.
func mirrorGet(t *testing.T, srv, n *harness.Node, cert *tls.Certificate, path string) (int, []byte, error) {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(srv.DataDir, "server", "tls", "kubelet-ca-bundle.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	tlsCfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tlsCfg.Certificates = []tls.Certificate{*cert}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: srv.NS.DialContext, TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + n.NS.IP + ":" + mirrorPort + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// agentCert is an agent's kubelet client certificate: a node's.
func agentCert(t *testing.T, a *harness.Node) tls.Certificate {
	pem := filepath.Join(a.DataDir, "agent", "kubelet", "pki", "kubelet-client-current.pem")
	cert, err := tls.LoadX509KeyPair(pem, pem)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// checkRefusals: a node's certificate is served; none, one of another
// CA, and the admin's (the cluster's client CA, not a node) are not.
func checkRefusals(t *testing.T, srv, agent *harness.Node) {
	node := agentCert(t, agent)
	if code, _, err := mirrorGet(t, srv, srv, &node, "/v2/"); err != nil || code != http.StatusOK {
		t.Errorf("a node's certificate: %d, %v; want 200", code, err)
	}
	if code, _, err := mirrorGet(t, srv, srv, nil, "/v2/"); err == nil {
		t.Errorf("no client certificate: answered %d, want the handshake refused", code)
	}
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("system:node:agent-1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := mirrorGet(t, srv, srv, &stranger, "/v2/"); err == nil {
		t.Errorf("a certificate of another CA: answered %d, want the handshake refused", code)
	}
	rc := srv.RESTConfig()
	admin, err := tls.X509KeyPair(rc.CertData, rc.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	if code, body, err := mirrorGet(t, srv, srv, &admin, "/v2/"); err != nil || code != http.StatusForbidden {
		t.Errorf("the admin's certificate: %d %s, %v; want 403", code, body, err)
	}
	if len(srv.LogLinesSince("refused a client that is not a node", since)) == 0 {
		t.Errorf("the server did not log refusing the admin:\n%s", srv.LogTail(10))
	}
}

// checkPauseRecovered removes the embedded pause image from agent-2's
// containerd and starts a pod of it there: the sandbox and the container
// need it, and a peer serves it.
func checkPauseRecovered(t *testing.T, srv *harness.Node, nodes []*harness.Node, a2 *harness.Node) {
	env := a2.Local()
	pause := lineWith(a2.Exec(time.Minute, env, "ctr", "images", "ls", "-q").Stdout, "/pause:")
	if pause == "" {
		t.Fatal("agent-2 holds no pause image")
	}
	if r := a2.Exec(time.Minute, env, "ctr", "images", "rm", pause); r.Code != 0 {
		t.Fatalf("ctr images rm %s on agent-2: exit %d\n%s", pause, r.Code, r.Stderr)
	}
	since := time.Now()
	path := filepath.Join(t.TempDir(), "pause.yaml")
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: pause-on-agent-2, labels: {app: pause-on-agent-2}}
spec:
  nodeSelector: {kubernetes.io/hostname: agent-2}
  terminationGracePeriodSeconds: 1
  containers:
  - {name: pause, image: %q, imagePullPolicy: IfNotPresent}
`, pause)
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Kubectl("apply", "-f", path)
	srv.WaitRunning(2*time.Minute, "app=pause-on-agent-2", 1)
	name, tag, _ := strings.Cut(strings.TrimPrefix(pause, "monokube.local/"), ":")
	resolved := false
	for _, n := range nodes[:2] { // the peers agent-2 asks: server-1, agent-1
		for _, l := range n.LogLinesSince("peer=system:node:agent-2", since) {
			resolved = resolved || (strings.Contains(l, "/v2/"+name+"/manifests/"+tag+" ") && strings.Contains(l, "status=200"))
		}
	}
	if !resolved {
		t.Errorf("no peer logged resolving %s for agent-2:\n%s", pause, srv.LogTail(20))
	}
}

// echoBlobs are the digests of the echo image's config and layers, from
// the server's mirror.
func echoBlobs(t *testing.T, srv *harness.Node, cert tls.Certificate) []string {
	name, tag, _ := strings.Cut(strings.TrimPrefix(harness.EchoImage, "monokube.local/"), ":")
	code, body, err := mirrorGet(t, srv, srv, &cert, "/v2/"+name+"/manifests/"+tag+"?ns=monokube.local")
	if err != nil || code != http.StatusOK {
		t.Fatalf("the echo image's manifest from the server's mirror: %d %s, %v", code, body, err)
	}
	var m struct {
		Manifests []struct{ Digest string } `json:"manifests"`
		Config    struct{ Digest string }   `json:"config"`
		Layers    []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) > 0 { // an index: its first manifest (the tarball holds one platform)
		code, body, err = mirrorGet(t, srv, srv, &cert, "/v2/"+name+"/manifests/"+m.Manifests[0].Digest)
		if err != nil || code != http.StatusOK {
			t.Fatalf("the echo image's platform manifest: %d %s, %v", code, body, err)
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
	}
	out := []string{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	if len(out) < 2 || out[0] == "" {
		t.Fatalf("the echo image's manifest lists no config or no layer: %s", body)
	}
	return out
}

// checkTamper flips a byte of each blob of the echo image on the server
// (the first peer agent-2 asks after itself) and has agent-2 pull the
// image again: the server refuses the blobs, agent-1 serves them. The
// config blob is always fetched (the layers are not where agent-2 still
// holds their snapshots), so it is the one the test follows.
func checkTamper(t *testing.T, srv *harness.Node, agents []*harness.Node) {
	cert := agentCert(t, agents[0])
	digests := echoBlobs(t, srv, cert)
	blobs := filepath.Join(srv.DataDir, "agent", "containerd", "io.containerd.content.v1.content", "blobs")
	for _, d := range digests {
		path := filepath.Join(blobs, strings.Replace(d, ":", "/", 1))
		restore := flipByte(t, path)
		t.Cleanup(restore)
	}
	a2 := agents[1]
	env := a2.Local()
	// No pod may hold the image on agent-2 for it to be removed.
	srv.Kubectl("delete", "deployment", "if-not-present", "always")
	srv.Kubectl("wait", "--for=delete", "pod", "-l", "app in (if-not-present,always)", "--timeout=2m")
	if r := a2.Exec(time.Minute, env, "crictl", "rmi", harness.EchoImage); r.Code != 0 {
		t.Fatalf("crictl rmi on agent-2: exit %d\n%s", r.Code, r.Stderr)
	}
	since := time.Now()
	if r := a2.Exec(3*time.Minute, env, "crictl", "pull", harness.EchoImage); r.Code != 0 {
		t.Fatalf("crictl pull on agent-2 with the server's copy tampered: exit %d\n%s", r.Code, r.Stderr)
	}
	if got := srv.LogLinesSince("does not match its digest: not served", since); len(got) == 0 {
		t.Errorf("the server did not log refusing its tampered blob:\n%s", srv.LogTail(30))
	}
	served := false
	for _, l := range agents[0].LogLinesSince("peer=system:node:agent-2", since) {
		served = served || (strings.Contains(l, digests[0]) && strings.Contains(l, "status=200") && strings.Contains(l, "method=GET"))
	}
	if !served {
		t.Errorf("agent-1 did not serve the config blob %s to agent-2:\n%s", digests[0], agents[0].LogTail(30))
	}
	// With agent-1's copy tampered too, no node holds a good one: the
	// pull fails, and agent-2 holds no image.
	t.Cleanup(flipByte(t, filepath.Join(agents[0].DataDir, "agent", "containerd", "io.containerd.content.v1.content", "blobs",
		strings.Replace(digests[0], ":", "/", 1))))
	if r := a2.Exec(time.Minute, env, "crictl", "rmi", harness.EchoImage); r.Code != 0 {
		t.Fatalf("crictl rmi on agent-2: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := a2.Exec(3*time.Minute, env, "crictl", "pull", harness.EchoImage); r.Code == 0 {
		t.Errorf("crictl pull on agent-2 with every copy tampered succeeded:\n%s", r.Stdout)
	}
	if r := a2.Exec(time.Minute, env, "crictl", "inspecti", harness.EchoImage); r.Code == 0 {
		t.Errorf("agent-2 holds the image after a failed pull:\n%s", r.Stdout)
	}
}

// flipByte inverts the middle byte of the file at path in place; the
// returned func puts it back.
func flipByte(t *testing.T, path string) func() {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open the server's blob: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	at := st.Size() / 2
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	return func() {
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			b[0] ^= 0xff
			_, _ = f.WriteAt(b, at)
			f.Close()
		}
	}
}
