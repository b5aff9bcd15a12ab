//go:build e2e

// Package server_test runs the real monokube binary as a control-plane-only
// server inside namespaces the test creates, and checks what a user sees:
// the API, kubectl, shutdown, restart and refusal of bad input.
package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/monokube/monokube/tests/harness"
)

func TestServerLifecycle(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	n := harness.NewNode(t, harness.NewNetwork(t), 2)
	n.StartServer()
	t.Logf("cold start to /readyz: %s", n.WaitReadyz(2*time.Minute))

	t.Run("kubectl readyz", func(t *testing.T) {
		if got := n.Kubectl("get", "--raw", "/readyz"); got != "ok" {
			t.Fatalf("readyz = %q", got)
		}
	})
	t.Run("version", func(t *testing.T) { checkVersion(t, n) })
	t.Run("anonymous only on health endpoints", func(t *testing.T) { checkAnonymous(t, n) })
	t.Run("objects", func(t *testing.T) {
		n.Kubectl("create", "configmap", "e2e", "--from-literal=greeting=hello")
		if got := n.Kubectl("get", "configmap", "e2e", "-o", "jsonpath={.data.greeting}"); got != "hello" {
			t.Fatalf("configmap data = %q", got)
		}
	})
	t.Run("deployment gets pods", func(t *testing.T) {
		n.Kubectl("create", "deployment", "web", "--image=registry.invalid/web:1", "--replicas=2")
		waitPods(t, n, "app=web", 2)
	})
	t.Run("secrets encrypted at rest", func(t *testing.T) {
		n.Kubectl("create", "secret", "generic", "s1", "--from-literal=password=plain-text-value")
		raw := etcdGet(t, n, "/registry/secrets/default/s1")
		if !strings.HasPrefix(raw, "k8s:enc:secretbox:v1:") || strings.Contains(raw, "plain-text-value") {
			t.Fatalf("secret is not encrypted in etcd: %.80q", raw)
		}
	})
	t.Run("nothing unauthenticated on the node IP", func(t *testing.T) { checkListeners(t, n) })
	t.Run("etcd members", func(t *testing.T) { checkEtcdMembers(t, n) })
	t.Run("certificate check lists the server's certificates", func(t *testing.T) {
		n.CheckCertificates(t, "server-ca.crt", "serving-kube-apiserver.crt", "etcd/server-client.crt", "admin.kubeconfig")
	})
	t.Run("file modes", func(t *testing.T) { checkModes(t, n) })
	t.Run("pod security baseline by default", func(t *testing.T) { checkPodSecurity(t, n) })
	t.Run("audit log records a Secret read", func(t *testing.T) { checkAudit(t, n) })
	t.Run("admin is RBAC-bound, super-admin break-glass", func(t *testing.T) { checkAdminIdentities(t, n) })
	t.Run("manifests directory", func(t *testing.T) { checkManifests(t, n) })
	t.Run("join tokens", func(t *testing.T) { checkTokens(t, n) })
	t.Run("a second server on the same dirs is refused", func(t *testing.T) { checkSecondServer(t, n) })
	token := serverToken(t, n)

	caBefore := readFile(t, filepath.Join(n.DataDir, "server/tls/server-ca.crt"))
	code, took := n.Stop(10 * time.Second)
	t.Logf("SIGTERM to exit: %s", took)
	if code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0\n%s", code, n.LogTail(20))
	}

	n.StartServer()
	t.Logf("restart to /readyz: %s", n.WaitReadyz(2*time.Minute))
	t.Run("objects survive restart", func(t *testing.T) {
		if got := n.Kubectl("get", "configmap", "e2e", "-o", "jsonpath={.data.greeting}"); got != "hello" {
			t.Errorf("configmap after restart = %q", got)
		}
		if got := n.Kubectl("get", "secret", "s1", "-o", "jsonpath={.data.password}"); got != "cGxhaW4tdGV4dC12YWx1ZQ==" {
			t.Errorf("secret after restart = %q", got)
		}
		waitPods(t, n, "app=web", 2)
		if readFile(t, filepath.Join(n.DataDir, "server/tls/server-ca.crt")) != caBefore {
			t.Error("the cluster CA changed across a restart")
		}
		if got := serverToken(t, n); got != token {
			t.Errorf("the join token changed across a restart: %q, was %q", got, token)
		}
	})
	if code, _ := n.Stop(10 * time.Second); code != 0 {
		t.Fatalf("exit code after second SIGTERM = %d", code)
	}
}

func checkVersion(t *testing.T, n *harness.Node) {
	var v struct{ GitVersion, GitCommit string }
	if err := json.Unmarshal([]byte(n.Kubectl("get", "--raw", "/version")), &v); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.GitVersion, "v1.37.2+monokube.") {
		t.Errorf("apiserver gitVersion = %q, want v1.37.2+monokube.<version>", v.GitVersion)
	}
	r := n.Exec(10*time.Second, harness.Options{}, "--version")
	if r.Code != 0 || !strings.Contains(r.Stdout, "kubernetes v1.37.2") || !strings.HasPrefix(r.Stdout, "monokube ") {
		t.Errorf("monokube --version = %q (exit %d)", r.Stdout, r.Code)
	}
}

func checkAnonymous(t *testing.T, n *harness.Node) {
	for path, want := range map[string]int{"/readyz": 200, "/livez": 200, "/healthz": 200, "/version": 401, "/api/v1/namespaces": 401} {
		got, err := n.AnonymousGet(t.Context(), "6443", path)
		if err != nil || got != want {
			t.Errorf("anonymous GET %s = %d, %v; want %d", path, got, err, want)
		}
	}
}

func checkModes(t *testing.T, n *harness.Node) {
	for _, f := range []string{n.Kubeconfig, "server/tls/server-ca.key", "server/tls/client-admin.key",
		"server/tls/etcd/client.key", "server/cred/encryption-config.json", "server/tls/service.key",
		"server/tls/kubelet-serving-ca.key", "server/cred/audit-policy.yaml", "server/cred/admission-config.yaml", "server/logs/audit.log",
		"server/cred/super-admin.kubeconfig", "server/tls/client-super-admin.key", ".monokube"} {
		if !filepath.IsAbs(f) {
			f = filepath.Join(n.DataDir, f)
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

// checkPodSecurity: a privileged pod is refused in a namespace that sets
// no level, and admitted where the namespace says privileged.
func checkPodSecurity(t *testing.T, n *harness.Node) {
	pod := func(ns string) string {
		file := filepath.Join(t.TempDir(), "pod.json")
		data := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"priv","namespace":%q},
"spec":{"containers":[{"name":"c","image":"registry.invalid/x:1","securityContext":{"privileged":true}}]}}`, ns)
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	apply := func(file string) harness.Result {
		return n.Exec(30*time.Second, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "apply", "-f", file)
	}
	r := apply(pod("default"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "violates PodSecurity \"baseline:latest\"") {
		t.Errorf("privileged pod in default: exit %d, want a baseline refusal:\n%s", r.Code, r.Stderr)
	}
	n.Kubectl("create", "namespace", "priv")
	n.Kubectl("label", "namespace", "priv", "pod-security.kubernetes.io/enforce=privileged")
	if r := apply(pod("priv")); r.Code != 0 {
		t.Errorf("privileged pod in a privileged namespace refused: exit %d\n%s", r.Code, r.Stderr)
	}
}

// checkAudit: the admin's read of a Secret is in the audit log, as
// metadata (who, what), never the Secret's content.
func checkAudit(t *testing.T, n *harness.Node) {
	n.Kubectl("get", "secret", "s1", "-o", "name")
	file := filepath.Join(n.DataDir, "server", "logs", "audit.log")
	n.WaitFor(30*time.Second, "the Secret read in the audit log", func(context.Context) (bool, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return false, nil
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, `"verb":"get"`) && strings.Contains(line, `"resource":"secrets"`) &&
				strings.Contains(line, `"name":"s1"`) && strings.Contains(line, `"username":"monokube-admin"`) {
				if strings.Contains(line, "cGxhaW4tdGV4dC12YWx1ZQ") {
					t.Error("the audit log holds the Secret's value")
				}
				return true, nil
			}
		}
		return false, nil
	})
}

// checkAdminIdentities: the admin kubeconfig is in monokube:cluster-admins
// (cluster-admin through a binding, so it can be revoked), not
// system:masters; only the super-admin kubeconfig is.
func checkAdminIdentities(t *testing.T, n *harness.Node) {
	whoami := func(kubeconfig string) string {
		r := n.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}")
		if r.Code != 0 {
			t.Fatalf("kubectl auth whoami: exit %d\n%s", r.Code, r.Stderr)
		}
		return r.Stdout
	}
	if g := whoami(n.Kubeconfig); !strings.Contains(g, "monokube:cluster-admins") || strings.Contains(g, "system:masters") {
		t.Errorf("admin kubeconfig groups = %s, want monokube:cluster-admins and not system:masters", g)
	}
	super := filepath.Join(n.DataDir, "server", "cred", "super-admin.kubeconfig")
	if g := whoami(super); !strings.Contains(g, "system:masters") {
		t.Errorf("super-admin groups = %s, want system:masters", g)
	}
	if r := n.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "auth", "can-i", "*", "*"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "yes" {
		t.Errorf("admin can-i * * = %q (exit %d), want yes", r.Stdout, r.Code)
	}
}

func waitPods(t *testing.T, n *harness.Node, selector string, want int) {
	t.Helper()
	c := n.Client()
	n.WaitFor(time.Minute, "pods "+selector, func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
		return err == nil && len(pods.Items) == want, err
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkManifests drives the manifests controller: a file is applied,
// re-applied when changed and its objects deleted when it is removed; a
// bad file is reported by name and does not block the others; a .skip file
// keeps monokube away from its neighbour.
func checkManifests(t *testing.T, n *harness.Node) {
	dir := filepath.Join(n.DataDir, "server", "manifests")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cm := func(name, value string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {value: \"" + value + "\"}\n"
	}
	writeFile(t, filepath.Join(dir, "bad.yaml"), "apiVersion: example.com/v1\nkind: NoSuchKind\nmetadata: {name: x}\n")
	writeFile(t, filepath.Join(dir, "skipped.yaml"), cm("e2e-skipped", "1"))
	writeFile(t, filepath.Join(dir, "skipped.yaml.skip"), "")
	writeFile(t, filepath.Join(dir, "web.yaml"), cm("e2e-manifest", "1"))
	value := func(name string) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			c, err := n.Client().CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			return c.Data["value"], nil
		}
	}
	waitValue(t, n, value("e2e-manifest"), "1")
	if v, err := value("e2e-skipped")(t.Context()); err == nil {
		t.Errorf("skipped.yaml was applied (value %q) despite skipped.yaml.skip", v)
	}
	if log := readFile(t, n.LogPath); !strings.Contains(log, "bad.yaml") || !strings.Contains(log, "NoSuchKind") {
		t.Errorf("bad.yaml not reported by name and reason:\n%s", n.LogTail(20))
	}
	events := n.Kubectl("get", "events", "--field-selector", "reason=ManifestNotApplied", "-o", "jsonpath={.items[*].message}")
	if !strings.Contains(events, "bad.yaml") || !strings.Contains(events, "NoSuchKind") {
		t.Errorf("no ManifestNotApplied event naming bad.yaml and its reason: %q\n%s", events, n.LogTail(40))
	}
	writeFile(t, filepath.Join(dir, "web.yaml"), cm("e2e-manifest", "2"))
	waitValue(t, n, value("e2e-manifest"), "2")
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	n.WaitFor(time.Minute, "objects of a removed manifest deleted", func(ctx context.Context) (bool, error) {
		_, err := value("e2e-manifest")(ctx)
		return apierrors.IsNotFound(err), err
	})
	for _, f := range []string{"bad.yaml", "skipped.yaml", "skipped.yaml.skip"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
}

func waitValue(t *testing.T, n *harness.Node, get func(context.Context) (string, error), want string) {
	t.Helper()
	n.WaitFor(time.Minute, "manifest value "+want, func(ctx context.Context) (bool, error) {
		v, err := get(ctx)
		return v == want, err
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkSecondServer starts another server on the running one's data and
// run dirs: it must stop at once, naming the first one's PID, and the
// first must keep serving.
func checkSecondServer(t *testing.T, n *harness.Node) {
	r := n.Exec(time.Minute, harness.Options{}, "server", "--data-dir", n.DataDir, "--run-dir", n.RunDir)
	if r.Code == 0 || !regexp.MustCompile(`another monokube \(PID [0-9]+\) runs on `+regexp.QuoteMeta(n.DataDir)).MatchString(r.Stderr) {
		t.Errorf("second server: exit %d, want a refusal naming the first one's PID:\n%s", r.Code, r.Stderr)
	}
	if r := n.Exec(30*time.Second, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "get", "--raw", "/readyz"); r.Code != 0 {
		t.Errorf("the first server stopped serving: %s", r.Stderr)
	}
}
