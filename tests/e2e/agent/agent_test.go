//go:build e2e

// Package agent_test joins `monokube agent` nodes to a server, each in
// namespaces the test creates on one private network, and checks the join
// protocol: refusals of bad tokens before anything is written, TLS
// bootstrap of the agent's own credentials, pods on the agent, and an
// agent restart keeping its pods.
package agent_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certutil "k8s.io/client-go/util/cert"

	"github.com/monokube/monokube/tests/harness"
)

const agentName = "agent-1"

func TestAgentJoins(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	network := harness.NewNetwork(t)
	srv := harness.NewNode(t, network, 2)
	srv.StageImages(nil)
	srv.StartServerNode("--node-name", "server-1", "--disable", "local-storage,metrics-server")
	srv.WaitReadyz(2 * time.Minute)
	srv.WaitNodeReady(3 * time.Minute)
	token := srv.JoinToken()

	t.Run("bad tokens are refused before anything is written", func(t *testing.T) { checkRefusals(t, srv, network, token) })

	agent := harness.NewNode(t, network, 3)
	agent.StageImages(nil)
	start := time.Now()
	agent.StartAgent(srv, token, agentName)
	agent.WaitNodesReady(srv, 2)
	t.Logf("agent start to node Ready: %s", time.Since(start))

	t.Run("certificate check lists the agent's certificates", func(t *testing.T) {
		agent.CheckCertificates(t, "server-ca.crt", "kubelet-client-current.pem")
	})
	t.Run("agent credentials are its own", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(agent.DataDir, "agent", "kubelet", "pki", "kubelet-client-current.pem"))
		if err != nil {
			t.Fatalf("bootstrapped client certificate: %v", err)
		}
		if !strings.Contains(string(data), "PRIVATE KEY") {
			t.Error("kubelet-client-current.pem holds no key")
		}
		// The serving CSR follows the node's registration.
		var csrs string
		srv.WaitFor(time.Minute, "the agent's serving CSR approved", func(context.Context) (bool, error) {
			csrs = srv.Kubectl("get", "csr", "-o", "jsonpath={range .items[*]}{.spec.signerName} {.spec.username} {.status.conditions[0].type}{\"\\n\"}{end}")
			return strings.Contains(csrs, "kubernetes.io/kubelet-serving system:node:"+agentName+" Approved"), nil
		})
		if want := "kubernetes.io/kube-apiserver-client-kubelet system:bootstrap:"; !strings.Contains(csrs, want) {
			t.Errorf("no CSR %q among:\n%s", want, csrs)
		}
		// The join token is gone from the node once it holds its certificate.
		bootstrap := filepath.Join(agent.DataDir, "agent", "etc", "bootstrap.kubeconfig")
		srv.WaitFor(time.Minute, "the bootstrap kubeconfig removed", func(context.Context) (bool, error) {
			_, err := os.Stat(bootstrap)
			return os.IsNotExist(err), nil
		})
		// Its serving certificate comes from the kubelet-serving CA, which
		// no client trusts as the apiserver.
		serving, err := os.ReadFile(filepath.Join(agent.DataDir, "agent", "kubelet", "pki", "kubelet-server-current.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if !verifiesWith(t, serving, filepath.Join(srv.DataDir, "server", "tls", "kubelet-serving-ca.crt")) ||
			verifiesWith(t, serving, filepath.Join(srv.DataDir, "server", "tls", "server-ca.crt")) {
			t.Error("the agent's kubelet serving certificate does not chain to the kubelet-serving CA alone")
		}
	})
	srv.Kubectl("apply", "-f", srv.PinnedEcho("on-agent", agentName))
	srv.WaitRunning(2*time.Minute, "app=on-agent", 1)
	pod := strings.TrimPrefix(strings.TrimSpace(srv.Kubectl("get", "pods", "-l", "app=on-agent", "-o", "name")), "pod/")
	t.Run("logs and exec on the agent's pod", func(t *testing.T) {
		if out := srv.Kubectl("logs", pod); !strings.Contains(out, "echo listening on :8080") {
			t.Errorf("kubectl logs = %q", out)
		}
		if out := srv.Kubectl("exec", pod, "--", "/echo", "echo-cmd", "hi"); out != "hi\n" {
			t.Errorf("kubectl exec = %q", out)
		}
	})
	t.Run("pods reach each other across nodes", func(t *testing.T) { checkOverlay(t, srv, agent, pod) })
	t.Run("agent restart keeps its pods", func(t *testing.T) {
		before := srv.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}")
		if code, took := agent.Stop(15 * time.Second); code != 0 {
			t.Fatalf("agent exit %d after SIGTERM (%s)", code, took)
		}
		agent.StartAgent(srv, "", agentName) // joined already: no token needed
		agent.WaitNodesReady(srv, 2)
		srv.WaitRunning(2*time.Minute, "app=on-agent", 1)
		after := srv.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}")
		if after != before || !strings.HasSuffix(after, " 0") {
			t.Errorf("container after restart %q, before %q (want the same, restartCount 0)", after, before)
		}
	})
	agent2 := harness.NewNode(t, network, 4)
	t.Run("second agent joins with a created token", func(t *testing.T) {
		agent2.StartAgent(srv, createToken(t, srv, "10m"), "agent-2")
		agent2.WaitNodesReady(srv, 3)
	})
	t.Run("expired token refused", func(t *testing.T) {
		expiring := createToken(t, srv, "1s")
		waitExpired(t, srv, expiring)
		n := harness.NewNode(t, network, 30)
		r := n.Exec(2*time.Minute, harness.Options{}, "agent", "--server", srv.ServerURL(), "--token", expiring,
			"--node-name", "late", "--data-dir", n.DataDir, "--run-dir", n.RunDir, "--node-ip", n.NS.IP)
		if r.Code == 0 || !strings.Contains(r.Stderr, "expired") {
			t.Errorf("exit %d, want a refusal naming an expired token:\n%s", r.Code, r.Stderr)
		}
	})
	t.Run("a deleted node's name is held until the admin releases it", func(t *testing.T) {
		srv.Kubectl("delete", "node", "agent-2")
		// Upstream kube-proxy ends the process when its Node is deleted
		// (exit 1, for a supervisor to restart); a stop before that exits 0.
		if code, _ := agent2.Stop(15 * time.Second); code != 0 && code != 1 {
			t.Errorf("agent-2 exit %d:\n%s", code, agent2.LogTail(40))
		}
		if out := srv.Kubectl("get", "nodes", "-o", "name"); strings.Contains(out, "agent-2") {
			t.Fatalf("agent-2 still listed after delete and stop:\n%s", out)
		}
		// Its certificate is still valid: a new join for the name is denied.
		agent2.Wipe()
		agent2.StartAgent(srv, createToken(t, srv, "10m"), "agent-2")
		denied := "kubectl -n kube-system delete lease " + "monokube-node-agent-2"
		srv.WaitFor(2*time.Minute, "the new agent-2 join CSR denied", func(ctx context.Context) (bool, error) {
			return strings.Contains(srv.Kubectl("get", "csr", "-o", "jsonpath={range .items[*]}{.status.conditions[0].message}{\"\\n\"}{end}"), denied), nil
		})
		agent2.Stop(15 * time.Second)
		srv.Kubectl("-n", "kube-system", "delete", "lease", "monokube-node-agent-2")
		agent2.Wipe()
		agent2.StartAgent(srv, createToken(t, srv, "10m"), "agent-2")
		agent2.WaitNodesReady(srv, 3)
	})
	if code, _ := agent2.Stop(15 * time.Second); code != 0 {
		t.Errorf("agent-2 exit %d after SIGTERM", code)
	}
	if code, _ := agent.Stop(15 * time.Second); code != 0 {
		t.Errorf("agent exit %d after SIGTERM", code)
	}
	if code, _ := srv.Stop(15 * time.Second); code != 0 {
		t.Errorf("server exit %d after SIGTERM", code)
	}
}

// checkOverlay: the agent's pod reaches a pod on the server by pod IP, by
// ClusterIP and by Service name (CoreDNS runs on either node), over
// flannel's VXLAN.
func checkOverlay(t *testing.T, srv, agent *harness.Node, agentPod string) {
	srv.Kubectl("apply", "-f", srv.PinnedEcho("on-server", "server-1"))
	srv.Kubectl("expose", "deployment", "on-server", "--port", "8080")
	srv.WaitRunning(2*time.Minute, "app=on-server", 1)
	srv.WaitDeploymentsAvailable(2*time.Minute, "kube-system", "coredns")
	serverPod := strings.TrimPrefix(strings.TrimSpace(srv.Kubectl("get", "pods", "-l", "app=on-server", "-o", "name")), "pod/")
	podIP := srv.Kubectl("get", "pod", serverPod, "-o", "jsonpath={.status.podIP}")
	clusterIP := srv.Kubectl("get", "service", "on-server", "-o", "jsonpath={.spec.clusterIP}")
	for _, n := range []*harness.Node{srv, agent} {
		if r := n.Exec(time.Minute, harness.Options{Setup: []string{"ip link show flannel.1 >&2"}}, "--version"); r.Code != 0 {
			t.Errorf("no flannel.1 on %s: %s", n.NS.Name, r.Stderr)
		}
	}
	for _, url := range []string{
		"http://" + podIP + ":8080/",
		"http://" + clusterIP + ":8080/",
		"http://on-server.default.svc.cluster.local:8080/",
		"http://on-server:8080/",
	} {
		out := srv.Kubectl("exec", agentPod, "--", "/echo", "get", url)
		if !strings.HasPrefix(out, "hello from "+serverPod) {
			t.Errorf("GET %s from the agent's pod = %q, want hello from %s", url, out, serverPod)
		}
	}
}

// createToken runs `monokube token create --ttl ttl` on the server.
func createToken(t *testing.T, srv *harness.Node, ttl string) string {
	t.Helper()
	r := srv.Exec(time.Minute, harness.Options{}, "token", "create", "--ttl", ttl)
	if r.Code != 0 {
		t.Fatalf("token create: exit %d: %s", r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// waitExpired waits until the join token's Secret says it has expired, or
// the token cleaner has deleted it.
func waitExpired(t *testing.T, srv *harness.Node, token string) {
	t.Helper()
	parts := strings.Split(token, "::")
	id, _, _ := strings.Cut(parts[len(parts)-1], ".")
	srv.WaitFor(time.Minute, "token "+id+" expired", func(ctx context.Context) (bool, error) {
		s, err := srv.Client().CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+id, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		exp, err := time.Parse(time.RFC3339, string(s.Data["expiration"]))
		if err != nil {
			return false, fmt.Errorf("expiration %q: %w", s.Data["expiration"], err)
		}
		return time.Now().After(exp), fmt.Errorf("expires at %s", exp)
	})
}

// checkRefusals runs agents with bad tokens: each exits non-zero saying
// what is wrong, and leaves no agent state behind.
func checkRefusals(t *testing.T, srv *harness.Node, network *harness.Network, token string) {
	parts := strings.Split(token, "::")
	id, secret, _ := strings.Cut(parts[2], ".")
	wrongSecret := strings.Join([]string{parts[0], parts[1], id + "." + strings.Repeat("x", len(secret))}, "::")
	wrongCA := strings.Join([]string{parts[0], "sha256:" + strings.Repeat("0", 64), parts[2]}, "::")
	for i, tc := range []struct{ name, token, want string }{
		{"malformed", "abcdef.0123456789abcdef", "not a monokube join token"},
		{"wrong secret", wrongSecret, "secret is wrong"},
		{"CA hash of another cluster", wrongCA, "does not match the token's CA hash"},
		{"no token", "", "--token is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := harness.NewNode(t, network, 20+i)
			args := []string{"agent", "--server", srv.ServerURL(), "--node-name", "refused", "--data-dir", n.DataDir, "--run-dir", n.RunDir, "--node-ip", n.NS.IP}
			if tc.token != "" {
				args = append(args, "--token", tc.token)
			}
			r := n.Exec(time.Minute, harness.Options{}, args...)
			if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("exit %d, want failure saying %q:\n%s", r.Code, tc.want, r.Stderr)
			}
			if _, err := os.Stat(filepath.Join(n.DataDir, "agent")); err == nil {
				t.Error("a refused join wrote the agent's state")
			}
		})
	}
}

// TestFlannelBackendNone: with --flannel-backend none monokube runs no
// overlay and writes no CNI config, so the node waits for the user's CNI.
func TestFlannelBackendNone(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	n := harness.NewNode(t, harness.NewNetwork(t), 2)
	n.StartServerNode("--flannel-backend", "none", "--disable", "coredns,local-storage,metrics-server")
	n.WaitReadyz(2 * time.Minute)
	c := n.Client()
	n.WaitFor(2*time.Minute, "node registered with a pod CIDR", func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil && len(nodes.Items) == 1 && nodes.Items[0].Spec.PodCIDR != "", err
	})
	// The group starts each component once the one before is ready, and
	// records the version once all are: by then a CNI writer would have
	// written.
	n.WaitFor(2*time.Minute, "every component ready (version.json written)", func(context.Context) (bool, error) {
		_, err := os.Stat(filepath.Join(n.DataDir, "version.json"))
		return err == nil, err
	})
	if m, _ := filepath.Glob(filepath.Join(n.DataDir, "agent", "etc", "cni", "net.d", "*")); len(m) != 0 {
		t.Errorf("CNI config written with --flannel-backend none: %v", m)
	}
	if r := n.Exec(time.Minute, harness.Options{Setup: []string{"if ip link show flannel.1 >/dev/null 2>&1; then exit 3; fi"}}, "--version"); r.Code != 0 {
		t.Error("flannel.1 exists with --flannel-backend none")
	}
	nodes, err := c.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range nodes.Items[0].Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			t.Error("node Ready without any CNI config")
		}
	}
	if code, _ := n.Stop(15 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

// TestServerWithoutNodeReachesPods: a --disable-agent server has no node,
// yet its apiserver reaches a pod on an agent by pod IP (what webhooks and
// aggregated APIs need), through the nodes' VXLAN endpoints.
func TestServerWithoutNodeReachesPods(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	network := harness.NewNetwork(t)
	srv := harness.NewNode(t, network, 2)
	srv.StartServer("--disable", "coredns,local-storage,metrics-server")
	srv.WaitReadyz(2 * time.Minute)
	agent := harness.NewNode(t, network, 3)
	agent.StageImages(nil)
	agent.StartAgent(srv, srv.JoinToken(), agentName)
	agent.WaitNodesReady(srv, 1)
	srv.Kubectl("apply", "-f", srv.PinnedEcho("on-agent", agentName))
	srv.WaitRunning(2*time.Minute, "app=on-agent", 1)
	pod := strings.TrimPrefix(strings.TrimSpace(srv.Kubectl("get", "pods", "-l", "app=on-agent", "-o", "name")), "pod/")
	var out string
	srv.WaitFor(time.Minute, "apiserver proxy to the pod", func(context.Context) (bool, error) {
		r := srv.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", srv.Kubeconfig,
			"get", "--raw", "/api/v1/namespaces/default/pods/"+pod+":8080/proxy/")
		out = r.Stdout
		return r.Code == 0 && strings.HasPrefix(out, "hello from "+pod), fmt.Errorf("exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
	})
	if code, _ := agent.Stop(15 * time.Second); code != 0 {
		t.Errorf("agent exit %d after SIGTERM", code)
	}
	if code, _ := srv.Stop(15 * time.Second); code != 0 {
		t.Errorf("server exit %d after SIGTERM", code)
	}
}

// verifiesWith reports whether the first certificate in certPEM chains to
// the CA in caFile.
func verifiesWith(t *testing.T, certPEM []byte, caFile string) bool {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil || len(certs) == 0 {
		t.Fatalf("parse certificate: %v", err)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}
