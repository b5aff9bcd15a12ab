//go:build e2e

// Package keys_test rotates a real cluster's shared keys while it runs:
// the key that encrypts Secrets in etcd (every Secret readable after, etcd
// holding only ciphertext of the new key, twice in a row and across a
// restart) and the key that signs service account tokens (tokens from
// before keep working until the old key retires, new ones name the new
// key, a pod's token keeps working, the old key's tokens are refused
// after it retired).
package keys_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/tests/harness"
)

// status is what `secrets-encrypt status -o json` and `service-account-key
// status -o json` print, in the parts the tests read.
type status struct {
	Stage   string   `json:"stage"`
	Keys    []string `json:"keys"`
	Signing string   `json:"signing"`
	Agree   bool     `json:"agree"`
}

func readStatus(t *testing.T, n *harness.Node, cmd string) status {
	t.Helper()
	r := n.Exec(time.Minute, harness.Options{}, cmd, "status", "--data-dir", n.DataDir, "-o", "json")
	var st status
	if err := json.Unmarshal([]byte(r.Stdout), &st); r.Code != 0 || err != nil {
		t.Fatalf("%s status: exit %d (%v)\n%s%s", cmd, r.Code, err, r.Stdout, r.Stderr)
	}
	return st
}

// run runs a monokube command on n and fails the test unless it exits 0.
func run(t *testing.T, n *harness.Node, timeout time.Duration, args ...string) string {
	t.Helper()
	start := time.Now()
	r := n.Exec(timeout, harness.Options{}, append(args, "--data-dir", n.DataDir)...)
	if r.Code != 0 {
		t.Fatalf("%s: exit %d\n%s%s\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, n.LogTail(40))
	}
	t.Logf("%s: %s\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), r.Stdout)
	return r.Stdout
}

func TestSecretsEncryptRotateKeys(t *testing.T) {
	t.Parallel()
	harness.RequireRoot(t)
	srv := harness.NewNode(t, harness.NewNetwork(t), 2)
	args := []string{"--disable-agent", "--node-name", "enc-1"}
	srv.StartServer(args...)
	srv.WaitReadyz(2 * time.Minute)
	ctx := context.Background()
	client := srv.Client()
	const secrets = 20
	for i := range secrets {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%d", i), Namespace: "default"},
			StringData: map[string]string{"value": fmt.Sprintf("secret number %d", i)}}
		if _, err := client.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The server reports the config its apiserver applied a few seconds
	// after it is ready.
	var st status
	srv.WaitFor(time.Minute, "the server's report of its encryption config", func(context.Context) (bool, error) {
		st = readStatus(t, srv, "secrets-encrypt")
		return st.Agree, fmt.Errorf("%+v", st)
	})
	if len(st.Keys) != 1 || st.Keys[0] != "monokube-1" {
		t.Fatalf("before any rotation: %+v, want the one key monokube-1", st)
	}
	etcdHolds(t, srv, "monokube-1")

	out := run(t, srv, 5*time.Minute, "secrets-encrypt", "rotate-keys")
	if !strings.Contains(out, "re-encrypted") {
		t.Errorf("rotate-keys did not say it re-encrypted:\n%s", out)
	}
	first := rotated(t, srv, "monokube-1")
	secretsReadable(t, client, secrets)

	t.Run("a restart keeps the new key", func(t *testing.T) {
		srv.Stop(time.Minute)
		srv.StartServer(args...)
		srv.WaitReadyz(2 * time.Minute)
		secretsReadable(t, srv.Client(), secrets)
	})
	t.Run("a second rotation", func(t *testing.T) {
		run(t, srv, 5*time.Minute, "secrets-encrypt", "rotate-keys")
		rotated(t, srv, first)
		secretsReadable(t, srv.Client(), secrets)
	})
}

// rotated checks that the status is finished and agreed on one key other
// than old, and that etcd holds Secrets under that key only; it returns
// the key.
func rotated(t *testing.T, srv *harness.Node, old string) string {
	t.Helper()
	st := readStatus(t, srv, "secrets-encrypt")
	if st.Stage != "finished" || len(st.Keys) != 1 || st.Keys[0] == old || !st.Agree {
		t.Fatalf("after rotate-keys: %+v, want finished and agreed on one key other than %s", st, old)
	}
	etcdHolds(t, srv, st.Keys[0])
	return st.Keys[0]
}

// etcdHolds checks, behind the apiserver's back, that every Secret in etcd
// is secretbox ciphertext of key.
func etcdHolds(t *testing.T, srv *harness.Node, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := srv.LocalEtcd(t).Get(ctx, "/registry/secrets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	want := "k8s:enc:secretbox:v1:" + key + ":"
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Value), want) {
			t.Errorf("etcd holds %s as %.30q, want ciphertext of %s", kv.Key, kv.Value, key)
		}
	}
	if len(resp.Kvs) < 20 {
		t.Errorf("etcd holds %d Secrets, want the test's 20 at least", len(resp.Kvs))
	}
}

func secretsReadable(t *testing.T, client kubernetes.Interface, n int) {
	t.Helper()
	for i := range n {
		s, err := client.CoreV1().Secrets("default").Get(context.Background(), fmt.Sprintf("s-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Secret s-%d: %v", i, err)
		}
		if got, want := string(s.Data["value"]), fmt.Sprintf("secret number %d", i); got != want {
			t.Errorf("Secret s-%d holds %q, want %q", i, got, want)
		}
	}
}

func TestServiceAccountKeyRotate(t *testing.T) {
	t.Parallel()
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	srv := harness.NewNode(t, harness.NewNetwork(t), 2)
	srv.StageImages(nil)
	srv.StartServerNode("--node-name", "sa-1", "--disable", "local-storage,metrics-server")
	srv.WaitReadyz(2 * time.Minute)
	srv.WaitNodeReady(3 * time.Minute)
	before := srv.Kubectl("create", "token", "default", "--duration", "2h")
	podToken := podsToken(t, srv)
	for what, tok := range map[string]string{"a token from before": before, "a pod's token": podToken} {
		if err := whoami(srv, tok); err != nil {
			t.Fatalf("%s, before the rotation: %v", what, err)
		}
	}
	initial := readStatus(t, srv, "service-account-key")

	const keepOld = 90 * time.Second
	run(t, srv, 5*time.Minute, "service-account-key", "rotate", "--keep-old", keepOld.String())
	rotatedAt := time.Now()
	st := readStatus(t, srv, "service-account-key")
	if st.Stage != "finished" || !st.Agree || st.Signing == initial.Signing {
		t.Fatalf("after rotate: %+v (before: signing %s), want finished, agreed, a new signing key", st, initial.Signing)
	}
	after := srv.Kubectl("create", "token", "default", "--duration", "2h")
	if kid(t, after) != st.Signing || kid(t, before) != initial.Signing {
		t.Errorf("token key IDs: before %s (signing %s), after %s (signing %s)", kid(t, before), initial.Signing, kid(t, after), st.Signing)
	}
	for what, tok := range map[string]string{"a token from before": before, "a pod's token": podToken, "a new token": after} {
		if err := whoami(srv, tok); err != nil {
			t.Errorf("%s, after the rotation: %v", what, err)
		}
	}
	jwks := srv.Kubectl("get", "--raw", "/openid/v1/jwks")
	if !strings.Contains(jwks, st.Signing) || !strings.Contains(jwks, initial.Signing) {
		t.Errorf("the issuer's JWKS lacks the new or the kept old key:\n%s", jwks)
	}

	// Once the old key retired (and the apiserver fetched the keys again,
	// every 10 s), its tokens are refused; the new ones still work.
	took := srv.WaitFor(keepOld+time.Minute, "the old key's token refused", func(context.Context) (bool, error) {
		return whoami(srv, before) != nil, nil
	})
	t.Logf("old key's token refused %s after the rotation (keep-old %s)", time.Since(rotatedAt).Round(time.Second), keepOld)
	if time.Since(rotatedAt) < keepOld {
		t.Errorf("the old key's token was refused after %s, before its %s were up (waited %s)", time.Since(rotatedAt), keepOld, took)
	}
	if err := whoami(srv, after); err != nil {
		t.Errorf("a new token after the old key retired: %v", err)
	}
}

// podsToken runs a pod and returns the service account token the kubelet
// mounted in it, read in the node's mount namespace (the test image has
// no cat).
func podsToken(t *testing.T, srv *harness.Node) string {
	t.Helper()
	srv.Kubectl("apply", "-f", srv.EchoDeployment("tok", 1))
	srv.WaitRunning(2*time.Minute, "app=tok", 1)
	uid := srv.Kubectl("get", "pods", "-l", "app=tok", "-o", "jsonpath={.items[0].metadata.uid}")
	glob := filepath.Join(srv.DataDir, "agent", "kubelet", "pods", uid, "volumes", "kubernetes.io~projected", "*", "token")
	out, err := srv.Command(harness.Options{}, "sh", "-c", "cat "+glob).Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("read the pod's token (%s): %v", glob, err)
	}
	return string(out)
}

// whoami is nil if tok is the default service account of default to
// srv's apiserver.
func whoami(srv *harness.Node, tok string) error {
	u, err := srv.WhoAmI(tok)
	if err == nil && u != "system:serviceaccount:default:default" {
		err = fmt.Errorf("the token is %q", u)
	}
	return err
}

// kid is the key ID in a JWT's header.
func kid(t *testing.T, tok string) string {
	t.Helper()
	head, _, _ := strings.Cut(strings.TrimSpace(tok), ".")
	data, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}
