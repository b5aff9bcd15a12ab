//go:build e2e

package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/monokube/monokube/tests/harness"
)

// serverToken waits for the server's join token file and returns it.
func serverToken(t *testing.T, n *harness.Node) string {
	t.Helper()
	path := filepath.Join(n.DataDir, "server", "token")
	var token string
	n.WaitFor(time.Minute, "join token file", func(context.Context) (bool, error) {
		data, err := os.ReadFile(path)
		token = strings.TrimSpace(string(data))
		return err == nil, err
	})
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v; want 0600", path, err, fi.Mode())
	}
	if !strings.HasPrefix(token, "mk1::sha256:") {
		t.Fatalf("join token %q does not pin a CA", token)
	}
	return token
}

// tokenID is the bootstrap token id inside a join token.
func tokenID(token string) string {
	parts := strings.Split(token, "::")
	return strings.SplitN(parts[len(parts)-1], ".", 2)[0]
}

// checkTokens: the server's token is stored and signed into cluster-info,
// which anonymous users may read; token create/list/delete work.
func checkTokens(t *testing.T, n *harness.Node) {
	id := tokenID(serverToken(t, n))
	n.WaitFor(time.Minute, "cluster-info signed for the server token", func(context.Context) (bool, error) {
		r := n.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig,
			"get", "configmap", "-n", "kube-public", "cluster-info", "-o", "jsonpath={.data}")
		return r.Code == 0 && strings.Contains(r.Stdout, "jws-kubeconfig-"+id), fmt.Errorf("exit %d: %s", r.Code, r.Stderr)
	})
	if code, err := n.AnonymousGet(t.Context(), "6443", "/api/v1/namespaces/kube-public/configmaps/cluster-info"); code != 200 {
		t.Errorf("anonymous GET cluster-info = %d, %v; want 200", code, err)
	}
	if code, _ := n.AnonymousGet(t.Context(), "6443", "/api/v1/namespaces/kube-system/configmaps/monokube-cluster"); code != 401 {
		t.Errorf("anonymous GET of the cluster settings = %d, want 401", code)
	}

	r := n.Exec(time.Minute, harness.Options{}, "token", "create", "--ttl", "1h", "--description", "e2e worker")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "mk1::sha256:") {
		t.Fatalf("token create: exit %d, stdout %q\n%s", r.Code, r.Stdout, r.Stderr)
	}
	agentToken := strings.TrimSpace(r.Stdout)
	created := tokenID(agentToken)
	list := n.Exec(time.Minute, harness.Options{}, "token", "list")
	if list.Code != 0 || !strings.Contains(list.Stdout, id) || !strings.Contains(list.Stdout, created) ||
		!strings.Contains(list.Stdout, "e2e worker") {
		t.Errorf("token list: exit %d\n%s%s", list.Code, list.Stdout, list.Stderr)
	}
	// The server's token expires (--token-ttl 24h by default).
	for _, line := range strings.Split(list.Stdout, "\n") {
		if strings.HasPrefix(line, id) && (strings.Contains(line, "never") || !strings.Contains(line, "server's join token")) {
			t.Errorf("server token listed as %q, want an expiry and its description", line)
		}
	}
	checkServerTokens(t, n, agentToken)
	if r := n.Exec(time.Minute, harness.Options{}, "token", "delete", created); r.Code != 0 {
		t.Errorf("token delete: exit %d: %s", r.Code, r.Stderr)
	}
	if list := n.Exec(time.Minute, harness.Options{}, "token", "list"); strings.Contains(list.Stdout, created) {
		t.Errorf("deleted token still listed:\n%s", list.Stdout)
	}
	if r := n.Exec(time.Minute, harness.Options{}, "token", "delete", "zzzzzz"); r.Code == 0 || !strings.Contains(r.Stderr, "no join token zzzzzz") {
		t.Errorf("deleting a missing token: exit %d: %s", r.Code, r.Stderr)
	}
}

// checkServerTokens: `token create --role server` makes a token that
// expires within the hour by default and is listed as a server token
// beside the agent token agentToken; one that never expires is refused.
// The server token, and not the agent token, reads the cluster identity,
// which goes when the token is deleted.
func checkServerTokens(t *testing.T, n *harness.Node, agentToken string) {
	agent := tokenID(agentToken)
	r := n.Exec(time.Minute, harness.Options{}, "token", "create", "--role", "server")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "mk1::sha256:") {
		t.Fatalf("token create --role server: exit %d, stdout %q\n%s", r.Code, r.Stdout, r.Stderr)
	}
	serverToken := strings.TrimSpace(r.Stdout)
	server := tokenID(serverToken)
	checkIdentityAccess(t, n, serverToken, agentToken)
	list := n.Exec(time.Minute, harness.Options{}, "token", "list")
	roles := map[string]string{}
	for _, line := range strings.Split(list.Stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			roles[f[0]] = f[1]
			if f[0] == server {
				exp, err := time.Parse(time.RFC3339, f[2])
				if left := time.Until(exp); err != nil || left > time.Hour || left < 50*time.Minute {
					t.Errorf("server token expires %q (%v): want within the hour by default", f[2], err)
				}
			}
		}
	}
	if roles[server] != "server" || roles[agent] != "agent" {
		t.Errorf("token list roles: %s is %q, %s is %q; want server and agent\n%s", server, roles[server], agent, roles[agent], list.Stdout)
	}
	r = n.Exec(time.Minute, harness.Options{}, "token", "create", "--role", "server", "--ttl", "0")
	if r.Code == 0 || !strings.Contains(r.Stderr, "must expire") {
		t.Errorf("a never-expiring server token: exit %d: %s", r.Code, r.Stderr)
	}
	if r := n.Exec(time.Minute, harness.Options{}, "token", "delete", server); r.Code != 0 {
		t.Fatalf("token delete %s: exit %d: %s", server, r.Code, r.Stderr)
	}
	secrets := n.Client().CoreV1().Secrets("kube-system")
	n.WaitFor(time.Minute, "the identity of a deleted server token removed", func(ctx context.Context) (bool, error) {
		_, err := secrets.Get(ctx, "monokube-server-join-"+server, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
}

// checkIdentityAccess: as serverToken the identity Secret reads, as
// agentToken it is forbidden.
func checkIdentityAccess(t *testing.T, n *harness.Node, serverToken, agentToken string) {
	as := func(token string) error {
		rc := n.RESTConfig()
		rc.TLSClientConfig = rest.TLSClientConfig{CAData: rc.CAData}
		rc.BearerToken = strings.Split(token, "::")[2]
		c, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.CoreV1().Secrets("kube-system").Get(t.Context(), "monokube-server-join-"+tokenID(serverToken), metav1.GetOptions{})
		if err == nil && len(s.Data["identity.json"]) == 0 {
			return fmt.Errorf("the identity Secret is empty")
		}
		return err
	}
	if err := as(serverToken); err != nil {
		t.Errorf("the server token cannot read its identity: %v", err)
	}
	if err := as(agentToken); !apierrors.IsForbidden(err) {
		t.Errorf("the agent token reading the identity: %v, want Forbidden", err)
	}
}
