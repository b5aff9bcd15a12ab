//go:build e2e

package node_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/tests/harness"
)

// checkNodePorts: nothing of the node answers on its IP without
// authentication. The kubelet's read-only port and kube-proxy's metrics are
// closed there, and the kubelet refuses an anonymous client (401) and one
// with no rights (403).
func checkNodePorts(t *testing.T, n *harness.Node) {
	for port, what := range map[string]string{"10255": "kubelet read-only", "10249": "kube-proxy metrics"} {
		if harness.Answers(t.Context(), n, port) {
			t.Errorf("%s port %s answers on the node IP %s", what, port, n.NS.IP)
		}
	}
	if code := kubeletGet(t, n, ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous GET kubelet /pods = %d, want 401", code)
	}
	n.Kubectl("create", "serviceaccount", "nobody")
	r := n.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "create", "token", "nobody")
	if r.Code != 0 {
		t.Fatalf("create token: exit %d\n%s", r.Code, r.Stderr)
	}
	if code := kubeletGet(t, n, strings.TrimSpace(r.Stdout)); code != http.StatusForbidden {
		t.Errorf("GET kubelet /pods as a service account with no rights = %d, want 403", code)
	}
}

// kubeletGet asks the kubelet for /pods with bearer token (none if ""),
// not verifying its serving certificate: only the answer's status counts.
func kubeletGet(t *testing.T, n *harness.Node, token string) int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     n.NS.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // status codes only
	}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+net.JoinHostPort(n.NS.IP, "10250")+"/pods", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET kubelet /pods: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
