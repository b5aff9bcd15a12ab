//go:build e2e

// Package carotate_test rotates the CAs of a running cluster, a server
// with its node and an agent, each running a pod, while a loop uses the
// cluster: `certificate rotate-ca` makes every CA file [new, old], the
// server's leaves and the agent's kubelet certificates come from the new
// CAs and are served, the agent restarts in place with its pod kept,
// both nodes stay Ready, exec, logs and metrics keep working, and pods
// trust the rotated apiserver with their service-account ca.crt and
// token, etcd's leaves carry the old etcd CA's certificate of the new;
// `rotate-ca --retire` then leaves the new CAs alone, restarting the
// server in place (its etcd read the old CA at start): a client
// certificate of the old client CA gets 401, one of the old etcd CA is
// refused by etcd, the old server CA no longer verifies the apiserver,
// kube-root-ca.crt holds only the new CA, and a join token made before
// the rotation is refused, saying the CA was rotated. The API is down
// only while the server restarts.
package carotate_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/tests/harness"
)

const (
	serverName = "server-1"
	agentName  = "agent-1"
	// trustAnnotation is where an agent reports the CA bundles it took.
	trustAnnotation = "monokube.io/ca-bundles"
	// stepTimeout is rotate-ca's --timeout: how long it waits for the
	// nodes at each step. An agent takes a step within a minute (it reads
	// the CAs every 10 s, then may restart).
	stepTimeout = "3m"
)

// caNames are the CAs rotate-ca rotates by default (caFile names their
// files).
var caNames = []string{"server", "client", "request-header", "kubelet-serving", "apiservice", "etcd"} //nolint:gochecknoglobals // fixed table

// serverLeaves are the leaves of the server and its node (relative to the
// data dir) that the new CAs must sign after the rotation, with their CA.
var serverLeaves = map[string]string{ //nolint:gochecknoglobals // fixed table
	"server/tls/serving-kube-apiserver.crt":          "server",
	"server/tls/serving-kube-controller-manager.crt": "server",
	"server/tls/serving-kube-scheduler.crt":          "server",
	"server/tls/serving-metrics-server.crt":          "apiservice",
	"server/tls/client-admin.crt":                    "client",
	"server/tls/client-kube-apiserver.crt":           "client",
	"server/tls/client-controller.crt":               "client",
	"server/tls/client-auth-proxy.crt":               "request-header",
	"agent/tls/client-kubelet.crt":                   "client",
	"agent/tls/client-kube-proxy.crt":                "client",
	"agent/tls/serving-kubelet.crt":                  "kubelet-serving",
	"server/tls/etcd/server-client.crt":              "etcd",
	"server/tls/etcd/peer-server-client.crt":         "etcd",
	"server/tls/etcd/client.crt":                     "etcd",
}

func TestRotateCA(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	harness.HoldMountpoints(t)
	network := harness.NewNetwork(t)
	artifacts := t.ArtifactDir() // before the nodes: their logs are copied there on failure
	srv := harness.NewNode(t, network, 2)
	srv.StageImages(nil)
	agent := harness.NewNode(t, network, 3)
	agent.StageImages(nil)
	keepLogs(t, artifacts, srv, agent)
	started := time.Now()
	srv.StartServerNode("--node-name", serverName, "--disable", "local-storage")
	srv.WaitReadyz(2 * time.Minute)
	srv.WaitNodeReady(3 * time.Minute)
	agent.StartAgent(srv, srv.JoinToken(), agentName)
	agent.WaitNodesReady(srv, 2)
	srv.Kubectl("apply", "-f", srv.PinnedEcho("on-server", serverName))
	srv.Kubectl("apply", "-f", srv.PinnedEcho("on-agent", agentName))
	srv.WaitRunning(2*time.Minute, "app=on-server", 1)
	srv.WaitRunning(2*time.Minute, "app=on-agent", 1)
	t.Logf("cluster of two nodes with a pod on each in %s", time.Since(started).Round(time.Second))

	// Before: the old CAs, a join token, the admin's client certificate.
	tlsDir := filepath.Join(srv.DataDir, "server", "tls")
	old := map[string]*x509.Certificate{}
	for _, n := range caNames {
		certs := readBundle(t, caFile(tlsDir, n))
		if len(certs) != 1 {
			t.Fatalf("%s holds %d certificates before the rotation, want 1", caFile(tlsDir, n), len(certs))
		}
		old[n] = certs[0]
	}
	oldToken := createToken(t, srv)
	oldServerToken := srv.JoinToken()
	oldAdmin := loadKeyPair(t, filepath.Join(tlsDir, "client-admin"))
	oldEtcdClient := loadKeyPair(t, filepath.Join(tlsDir, "etcd", "client"))
	agentPID, serverPID := agent.PID(), srv.PID()
	pods := map[string]podInfo{"app=on-server": podOf(t, srv, "app=on-server"), "app=on-agent": podOf(t, srv, "app=on-agent")}
	agentPod := pods["app=on-agent"]
	annotationBefore := nodeAnnotation(t, srv, agentName)
	t.Logf("before: agent PID %d, %s annotation %q, pods %+v", agentPID, trustAnnotation, annotationBefore, pods)

	loop := useCluster(t, srv, agentPod.Name, pods["app=on-server"].Name)
	rotateStart := time.Now()
	r := srv.Exec(5*time.Minute, harness.Options{}, "certificate", "rotate-ca", "--data-dir", srv.DataDir, "--timeout", stepTimeout)
	rotateTook := time.Since(rotateStart)
	if r.Code != 0 {
		w := loop.stop()
		csrs, _ := kubectl(srv, 30*time.Second, "get", "csr")
		t.Fatalf("certificate rotate-ca: exit %d after %s\n%s%s\nbackground loop: %+v\nCSRs:\n%s\nserver's errors and warnings since:\n%s\nagent's:\n%s",
			r.Code, rotateTook.Round(time.Millisecond), r.Stdout, r.Stderr, w, csrs,
			problems(srv, rotateStart), problems(agent, rotateStart))
	}
	t.Logf("certificate rotate-ca took %s (measured) and printed:\n%s", rotateTook.Round(time.Millisecond), r.Stdout)
	for _, want := range []string{"trust: every node trusts the new CAs beside the old (", "switch: the new CAs sign every certificate (", "rotated the CAs of "} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("rotate-ca printed no %q", want)
		}
	}
	podsRightAfter(t, srv, agent, pods)

	// 1. Every CA file is [new, old].
	cur := map[string]*x509.Certificate{}
	for _, n := range caNames {
		certs := readBundle(t, caFile(tlsDir, n))
		switch {
		case len(certs) != 2:
			t.Errorf("%s holds %d certificates after the rotation, want 2 (new, old)", caFile(tlsDir, n), len(certs))
		case certs[0].Equal(old[n]) || !certs[1].Equal(old[n]):
			t.Errorf("%s holds [%s, %s], want [a new CA, the old %s]", caFile(tlsDir, n), certs[0].Subject, certs[1].Subject, old[n].Subject)
		case !certs[0].IsCA:
			t.Errorf("%s: the new certificate %s is no CA", caFile(tlsDir, n), certs[0].Subject)
		}
		if len(certs) > 0 {
			cur[n] = certs[0]
		}
	}
	if t.Failed() {
		loop.stop()
		t.FailNow()
	}

	// 2. The server's leaves come from the new CAs and are served.
	checkServerLeaves(t, srv, cur)
	waitServed(t, "kube-apiserver", srv, srv.NS.IP+":6443", func(c *x509.Certificate) bool { return signedBy(c, cur["server"]) })
	waitServed(t, "the server's kubelet", srv, srv.NS.IP+":10250", func(c *x509.Certificate) bool { return signedBy(c, cur["kubelet-serving"]) })

	// 3. The agent took the new CAs, its kubelet's certificates were
	// re-issued by them and it restarted in place.
	checkAgent(t, srv, agent, tlsDir, cur, agentPID, annotationBefore, rotateStart)

	// Until the retirement the apiserver serves its new certificate with
	// the old CA's certificate of the new: a client that trusts only the
	// old CA (a kubeconfig copied before) still verifies it.
	if err := verifyServing(srv, old["server"]); err != nil {
		t.Errorf("a client trusting only the old server CA after the switch, before --retire: %v", err)
	}
	// The old admin certificate still works while the old client CA is
	// trusted beside the new.
	if code, err := apiGet(srv, cur["server"], &oldAdmin, ""); err != nil || code != http.StatusOK {
		t.Errorf("the old admin certificate after the switch, before --retire: %d %v, want 200", code, err)
	}

	// 4. Pods trust the rotated apiserver.
	checkRootCA(t, srv, tlsDir, time.Minute)
	checkPodAccess(t, srv, agent, agentPod, tlsDir, rotateStart.Add(rotateTook))
	checkPodAccess(t, srv, srv, pods["app=on-server"], tlsDir, rotateStart.Add(rotateTook))

	checkPods(t, srv, pods)
	checkExecLogs(t, srv, agentPod.Name)
	checkTopNode(t, srv)

	// 5. etcd's leaves carry the old etcd CA's certificate of the new:
	// etcd verifies with the CAs it read at start, the old one alone, and
	// still accepts a client certificate of the old CA.
	checkEtcdChains(t, srv, old["etcd"], cur["etcd"])
	if err := srv.EtcdAccepts(oldEtcdClient, cur["etcd"], old["etcd"]); err != nil {
		t.Errorf("etcd refused a client certificate of the old etcd CA before --retire: %v", err)
	}

	// 6. Retire the old CAs.
	retireStart := time.Now()
	// --retire waits until 5m+1m after the trust step: client-go reads a
	// changed CA file when a request comes 5 minutes after its last read.
	// It then restarts the server: the loop's failures meanwhile are the
	// outage's.
	loop.outage.Store(true)
	r = srv.Exec(10*time.Minute, harness.Options{}, "certificate", "rotate-ca", "--data-dir", srv.DataDir, "--retire", "--timeout", stepTimeout)
	loop.outage.Store(false)
	if r.Code != 0 {
		loop.stop()
		t.Fatalf("rotate-ca --retire: exit %d\n%s%s\nserver's errors and warnings since:\n%s\nagent's:\n%s",
			r.Code, r.Stdout, r.Stderr, problems(srv, retireStart), problems(agent, retireStart))
	}
	t.Logf("rotate-ca --retire took %s and printed:\n%s", time.Since(retireStart).Round(time.Millisecond), r.Stdout)
	if !strings.Contains(r.Stdout, "retired the old CAs of ") {
		t.Errorf("rotate-ca --retire printed no \"retired the old CAs of\"")
	}
	checkRetired(t, srv, agent, tlsDir, cur, old, &oldAdmin)
	checkServerRestart(t, srv, serverPID, retireStart)
	if err := srv.EtcdAccepts(oldEtcdClient, cur["etcd"]); err == nil {
		t.Errorf("etcd accepted a client certificate of the old etcd CA after --retire")
	} else {
		t.Logf("etcd refuses a client certificate of the old etcd CA after --retire: %v", err)
	}
	if err := srv.EtcdAccepts(loadKeyPair(t, filepath.Join(tlsDir, "etcd", "client")), cur["etcd"]); err != nil {
		t.Errorf("etcd refused the new etcd client certificate after --retire: %v", err)
	}
	checkPods(t, srv, pods)
	checkExecLogs(t, srv, agentPod.Name)
	if agent.PID() != agentPID {
		t.Errorf("agent PID %d after --retire, want %d", agent.PID(), agentPID)
	}

	w := loop.stop()
	t.Logf("background loop: %d rounds in %s; %d failed API requests, %d failed execs into the two pods, %d rounds with a node not Ready; "+
		"while --retire restarted the server: %d failed API requests, the API down for %s at most",
		w.rounds, w.took.Round(time.Second), w.apiFailures, w.execFailures, w.notReady, w.outageFailures, w.longestAPI.Round(time.Second))
	if w.notReady > 0 {
		t.Errorf("a node was not Ready in %d rounds of the background loop (logged above)", w.notReady)
	}
	if w.apiFailures > 0 {
		t.Errorf("%d requests to the apiserver failed during the rotation, outside the server's restart (logged above)", w.apiFailures)
	}
	if w.longestAPI > 45*time.Second {
		t.Errorf("the apiserver did not answer for %s in a row (logged above), want at most 45s: the server's restart", w.longestAPI.Round(time.Second))
	}
	// The agent's and the server's restarts may fail an exec or two; the
	// kubelets' new serving certificates must not.
	if w.longestExec > 45*time.Second {
		t.Errorf("execs into a pod failed for %s in a row during the rotation (logged above), want at most 45s", w.longestExec.Round(time.Second))
	}
	if w.rounds < 5 {
		t.Errorf("the background loop ran only %d rounds", w.rounds)
	}
	if now := srv.JoinToken(); now == oldServerToken {
		t.Errorf("the server's own join token file still pins the old server CA: %s", now)
	}

	// A token made before the rotation pins the retired CA.
	joinWithOldToken(t, network, srv, oldToken)
	logCAErrors(t, srv, rotateStart)
	checkServerLog(t, srv, rotateStart)
}

// vouchedNew reports whether extra is one certificate, of the first CA
// of bundle (the new) signed by the second (the old).
func vouchedNew(t *testing.T, extra []byte, bundle []*x509.Certificate) bool {
	t.Helper()
	block, rest := pem.Decode(extra)
	if block == nil || len(bytes.TrimSpace(rest)) > 0 || len(bundle) != 2 {
		return false
	}
	cross, err := x509.ParseCertificate(block.Bytes)
	return err == nil && bytes.Equal(cross.RawSubjectPublicKeyInfo, bundle[0].RawSubjectPublicKeyInfo) && cross.CheckSignatureFrom(bundle[1]) == nil
}

// podInfo is a pod as the test records it.
type podInfo struct {
	Name, UID string
	Restarts  int32
}

func podOf(t *testing.T, srv *harness.Node, selector string) podInfo {
	t.Helper()
	list, err := srv.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("pods %s: %v (%d pods)", selector, err, len(list.Items))
	}
	p := list.Items[0]
	info := podInfo{Name: p.Name, UID: string(p.UID)}
	for _, s := range p.Status.ContainerStatuses {
		info.Restarts += s.RestartCount
	}
	return info
}

// checkPods fails t unless each pod is still there, with the same UID,
// Running, and none of its containers restarted.
func checkPods(t *testing.T, srv *harness.Node, pods map[string]podInfo) {
	t.Helper()
	for sel, before := range pods {
		srv.WaitRunning(2*time.Minute, sel, 1)
		if now := podOf(t, srv, sel); now.UID != before.UID || now.Restarts != 0 {
			t.Errorf("pod %s: now %+v, before %+v: want the same pod, no restart", sel, now, before)
		}
	}
}

// checkExecLogs runs kubectl exec and logs on pod (the apiserver's client
// certificate towards the kubelet, the kubelet's serving one), retrying
// for a minute.
func checkExecLogs(t *testing.T, srv *harness.Node, pod string) {
	t.Helper()
	var out string
	took, ok := waitUntil(t, time.Minute, "kubectl exec into "+pod, func() error {
		var err error
		out, err = kubectl(srv, 20*time.Second, "exec", pod, "--", "/echo", "echo-cmd", "hi")
		return err
	})
	if ok && out != "hi\n" {
		t.Errorf("kubectl exec %s = %q", pod, out)
	}
	_, okLogs := waitUntil(t, time.Minute, "kubectl logs of "+pod, func() error {
		var err error
		out, err = kubectl(srv, 20*time.Second, "logs", pod)
		return err
	})
	if okLogs && !strings.Contains(out, "echo listening on :8080") {
		t.Errorf("kubectl logs %s = %q", pod, out)
	}
	if ok && okLogs {
		t.Logf("exec and logs into %s work (exec answered after %s)", pod, took.Round(time.Millisecond))
	}
}

// checkServerLeaves fails t unless every leaf of the server and its node
// is signed by the new CA of its kind.
func checkServerLeaves(t *testing.T, srv *harness.Node, cur map[string]*x509.Certificate) {
	t.Helper()
	for file, ca := range serverLeaves {
		certs := readBundle(t, filepath.Join(srv.DataDir, file))
		if !signedBy(certs[0], cur[ca]) {
			t.Errorf("%s (%s, issuer %s) is not signed by the new %s CA %s", file, certs[0].Subject, certs[0].Issuer, ca, cur[ca].Subject)
		}
	}
	admin := kubeconfigCert(t, srv.Kubeconfig)
	if !signedBy(admin, cur["client"]) {
		t.Errorf("the admin kubeconfig %s embeds a certificate from %s, not the new client CA", srv.Kubeconfig, admin.Issuer)
	}
	t.Logf("the server's %d leaves and its admin kubeconfig's come from the new CAs", len(serverLeaves))
}

// checkAgent checks the agent after the rotation: its CA files are the
// server's bundles, its kubelet's certificates come from the new CAs and
// are served, it reported the CAs on its Node and restarted in place.
func checkAgent(t *testing.T, srv, agent *harness.Node, tlsDir string, cur map[string]*x509.Certificate, pid int, annotationBefore string, rotateStart time.Time) {
	t.Helper()
	pki := filepath.Join(agent.DataDir, "agent", "kubelet", "pki")
	client := readBundle(t, filepath.Join(pki, "kubelet-client-current.pem"))[0]
	serving := readBundle(t, filepath.Join(pki, "kubelet-server-current.pem"))[0]
	if !signedBy(client, cur["client"]) {
		t.Errorf("the agent's kubelet client certificate (issuer %s) is not signed by the new client CA", client.Issuer)
	}
	if !signedBy(serving, cur["kubelet-serving"]) {
		t.Errorf("the agent's kubelet serving certificate (issuer %s) is not signed by the new kubelet-serving CA", serving.Issuer)
	}
	waitServed(t, "the agent's kubelet", agent, agent.NS.IP+":10250", func(c *x509.Certificate) bool { return c.Equal(serving) })
	cm, err := srv.Client().CoreV1().ConfigMaps("kube-system").Get(context.Background(), "monokube-cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The agent's files are what the servers publish; the server and
	// kubelet-serving CAs are published with the old CA's certificate of
	// the new after the CA file, which serving certificates are served
	// with until the retirement.
	for _, file := range []string{"server-ca.crt", "client-ca.crt"} {
		if a := readFile(t, filepath.Join(agent.DataDir, "agent", "tls", file)); string(a) != cm.Data[file] {
			t.Errorf("the agent's agent/tls/%s differs from the published one:\n%s\npublished:\n%s", file, a, cm.Data[file])
		}
	}
	for _, key := range []string{"server-ca.crt", "client-ca.crt", "kubelet-serving-ca.crt"} {
		published := []byte(cm.Data[key])
		file := readFile(t, filepath.Join(tlsDir, key))
		extra := bytes.TrimPrefix(published, file)
		switch {
		case !bytes.HasPrefix(published, file):
			t.Errorf("ConfigMap kube-system/monokube-cluster %s does not begin with the server's file", key)
		case key == "client-ca.crt" && len(extra) > 0:
			t.Errorf("ConfigMap kube-system/monokube-cluster %s holds more than the server's file", key)
		case key != "client-ca.crt" && !vouchedNew(t, extra, readBundle(t, filepath.Join(tlsDir, key))):
			t.Errorf("ConfigMap kube-system/monokube-cluster %s: after the server's file, not the old CA's certificate of the new", key)
		}
	}
	if now := nodeAnnotation(t, srv, agentName); now == "" || now == annotationBefore {
		t.Errorf("node %s annotation %s = %q (before the rotation %q): want a new report", agentName, trustAnnotation, now, annotationBefore)
	}
	select {
	case <-agent.Exited():
		t.Fatalf("the agent exited:\n%s", agent.LogTail(40))
	default:
	}
	if agent.PID() != pid {
		t.Errorf("agent PID %d, want %d", agent.PID(), pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Errorf("agent process %d: %v", pid, err)
	}
	restarts := logLines(agent, "restarting the agent")
	if len(restarts) == 0 {
		t.Errorf("the agent's log has no \"restarting the agent\":\n%s", agent.LogTail(40))
	}
	for _, l := range restarts {
		if at, ok := harness.LogTime(l); ok {
			t.Logf("the agent restarted in place (PID %d) %s after rotate-ca started: %s", pid, at.Sub(rotateStart).Round(time.Millisecond), l)
		} else {
			t.Logf("the agent restarted in place (PID %d): %s", pid, l)
		}
	}
	srv.WaitNodesReady(srv, 2)
}

// checkRootCA waits (at most timeout) until kube-root-ca.crt in default
// holds the server CA's file.
func checkRootCA(t *testing.T, srv *harness.Node, tlsDir string, timeout time.Duration) {
	t.Helper()
	want := readBundle(t, caFile(tlsDir, "server"))
	client := srv.Client()
	took, ok := waitUntil(t, timeout, "kube-root-ca.crt in default holding the server CA file", func() error {
		cm, err := client.CoreV1().ConfigMaps("default").Get(context.Background(), "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := parseBundle([]byte(cm.Data["ca.crt"])); !sameCerts(got, want) {
			return fmt.Errorf("it holds %d certificates, not the file's %d", len(got), len(want))
		}
		return nil
	})
	if !ok {
		return
	}
	t.Logf("kube-root-ca.crt in default holds the %d certificates of the server CA file (after %s)", len(want), took.Round(time.Millisecond))
}

// checkPodAccess waits (at most 3 minutes) until the service-account
// ca.crt of pod, on node n, holds the server CA file, then calls the
// apiserver with it and the pod's token.
func checkPodAccess(t *testing.T, srv, n *harness.Node, pod podInfo, tlsDir string, rotated time.Time) {
	t.Helper()
	want := readBundle(t, caFile(tlsDir, "server"))
	var ca []byte
	_, ok := waitUntil(t, 3*time.Minute, "pod "+pod.Name+"'s service-account ca.crt holding the server CA file", func() error {
		var err error
		if ca, err = podFile(n, pod, "ca.crt"); err != nil {
			return err
		}
		if got := parseBundle(ca); !sameCerts(got, want) {
			return fmt.Errorf("it holds %d certificates, not the file's %d", len(got), len(want))
		}
		return nil
	})
	if !ok {
		return
	}
	t.Logf("pod %s's service-account ca.crt holds the %d certificates of the server CA file (%s after rotate-ca returned)",
		pod.Name, len(want), time.Since(rotated).Round(time.Second))
	token, err := podFile(n, pod, "token")
	if err != nil {
		t.Fatal(err)
	}
	code, err := podGet(srv, ca, string(token))
	if err != nil || code != http.StatusOK {
		t.Errorf("GET /api with pod %s's ca.crt and token: %d %v, want 200", pod.Name, code, err)
	} else {
		t.Logf("GET /api with pod %s's ca.crt and token: %d", pod.Name, code)
	}
}

// podsRightAfter logs what each pod's service-account ca.crt holds right
// after rotate-ca returned and whether the apiserver verifies with it: a
// pod reads its ca.crt from a volume the kubelet updates by itself.
func podsRightAfter(t *testing.T, srv, agent *harness.Node, pods map[string]podInfo) {
	t.Helper()
	for sel, p := range pods {
		n := srv
		if sel == "app=on-agent" {
			n = agent
		}
		ca, err := podFile(n, p, "ca.crt")
		if err != nil {
			t.Logf("right after rotate-ca, pod %s: %v", p.Name, err)
			continue
		}
		token, _ := podFile(n, p, "token")
		code, err := podGet(srv, ca, string(token))
		t.Logf("right after rotate-ca, pod %s's ca.crt holds %d certificates; GET /api with it and its token: %d %v",
			p.Name, len(parseBundle(ca)), code, err)
	}
}

// checkRetired checks the cluster after --retire.
func checkRetired(t *testing.T, srv, agent *harness.Node, tlsDir string, cur, old map[string]*x509.Certificate, oldAdmin *tls.Certificate) {
	t.Helper()
	for _, n := range caNames {
		certs := readBundle(t, caFile(tlsDir, n))
		if len(certs) != 1 || !certs[0].Equal(cur[n]) {
			t.Errorf("%s holds %d certificates after --retire, want the new CA alone", caFile(tlsDir, n), len(certs))
		}
	}
	// The apiserver reads its client CA file again by itself.
	if took, ok := waitUntil(t, time.Minute, "the old admin certificate refused with 401", func() error {
		code, err := apiGet(srv, cur["server"], oldAdmin, "")
		if err == nil && code != http.StatusUnauthorized {
			err = fmt.Errorf("status %d", code)
		}
		return err
	}); ok {
		t.Logf("the old admin certificate gets 401 (%s after --retire returned)", took.Round(time.Millisecond))
	}
	if out := srv.Kubectl("get", "nodes", "-o", "name"); !strings.Contains(out, agentName) {
		t.Errorf("kubectl get nodes with the admin kubeconfig after --retire: %q", out)
	}
	if err := verifyServing(srv, old["server"]); err == nil {
		t.Errorf("a client trusting only the old server CA verified the apiserver after --retire")
	} else {
		t.Logf("a client trusting only the old server CA: %v", err)
	}
	if err := verifyServing(srv, cur["server"]); err != nil {
		t.Errorf("a client trusting the new server CA: %v", err)
	}
	checkRootCA(t, srv, tlsDir, 30*time.Second)
	for _, file := range []string{"server-ca.crt", "client-ca.crt"} {
		if a := readBundle(t, filepath.Join(agent.DataDir, "agent", "tls", file)); len(a) != 1 || !a[0].Equal(cur[strings.TrimSuffix(file, "-ca.crt")]) {
			t.Errorf("the agent's agent/tls/%s holds %d certificates after --retire, want the new CA alone", file, len(a))
		}
	}
	agent.WaitNodesReady(srv, 2)
}

// joinWithOldToken starts a fresh node joining with tok, a token made
// before the rotation, and wants it refused for the rotated CA.
func joinWithOldToken(t *testing.T, network *harness.Network, srv *harness.Node, tok string) {
	t.Helper()
	n := harness.NewNode(t, network, 4)
	start := time.Now()
	r := n.Exec(3*time.Minute, harness.Options{}, "agent", "--server", srv.ServerURL(), "--node-name", "agent-2",
		"--kubelet-arg", "cgroup-root="+n.CgroupRoot, "--token", tok,
		"--data-dir", n.DataDir, "--run-dir", n.RunDir, "--node-ip", n.NS.IP)
	out := r.Stdout + r.Stderr
	if r.Code == 0 || !strings.Contains(out, "rotated") {
		t.Errorf("a join with a token made before the rotation: exit %d, want a refusal mentioning the rotated CA:\n%s", r.Code, out)
		return
	}
	t.Logf("a join with the old token was refused in %s (exit %d): %s", time.Since(start).Round(time.Millisecond), r.Code, lastLine(out))
}

// logCAErrors logs how many lines of coredns' and metrics-server's logs
// since the rotation mention a certificate error: in-cluster clients that
// read ca.crt once.
func logCAErrors(t *testing.T, srv *harness.Node, since time.Time) {
	t.Helper()
	for _, d := range []string{"coredns", "metrics-server"} {
		out, err := kubectl(srv, 30*time.Second, "logs", "-n", "kube-system", "deploy/"+d, "--since-time", since.UTC().Format(time.RFC3339))
		if err != nil {
			t.Logf("logs of %s: %v", d, err)
			continue
		}
		var bad []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "x509") || strings.Contains(l, "certificate") {
				bad = append(bad, l)
			}
		}
		t.Logf("%s: %d log lines about certificates since the rotation started", d, len(bad))
		for i, l := range bad {
			if i == 5 {
				t.Logf("  ... %d more", len(bad)-i)
				break
			}
			t.Logf("  %s", l)
		}
	}
}

// checkServerLog fails t if a component of the server lost its lease
// since the rotation started (its clients could not reach the
// apiserver), and logs how many requests the apiserver could not
// authenticate (the test's own with the old admin certificate among
// them).
func checkServerLog(t *testing.T, srv *harness.Node, since time.Time) {
	t.Helper()
	var lost []string
	unauthenticated := 0
	for _, l := range logLines(srv, "") {
		if at, ok := harness.LogTime(l); !ok || at.Before(since) {
			continue
		}
		switch {
		case strings.Contains(l, "lost the lease"):
			lost = append(lost, l)
		case strings.Contains(l, "Unable to authenticate the request"):
			unauthenticated++
		}
	}
	t.Logf("server log since the rotation started: %d \"Unable to authenticate the request\"", unauthenticated)
	if len(lost) > 0 {
		t.Errorf("components of the server lost their lease during the rotation:\n%s", strings.Join(lost, "\n"))
	}
}

// checkTopNode waits (up to 2 minutes) for `kubectl top node` to list
// both nodes: metrics-server scrapes both kubelets, trusting the new
// kubelet-serving CA.
func checkTopNode(t *testing.T, srv *harness.Node) {
	t.Helper()
	start := time.Now()
	var out string
	var err error
	for i := 0; i < 24 && time.Since(start) < 2*time.Minute; i++ {
		out, err = kubectl(srv, 30*time.Second, "top", "node")
		if err == nil && strings.Contains(out, serverName) && strings.Contains(out, agentName) {
			t.Logf("kubectl top node answered after %s:\n%s", time.Since(start).Round(time.Second), out)
			return
		}
		time.Sleep(5 * time.Second)
	}
	t.Errorf("kubectl top node after %s: %v\n%s", time.Since(start).Round(time.Second), err, out)
}

// loopStats is what the background loop saw.
type loopStats struct {
	rounds, apiFailures, execFailures, notReady int
	// outageFailures are the failed API requests while outage was set.
	outageFailures int
	took           time.Duration
	// longestExec is the longest run of failed execs into a pod,
	// longestAPI of failed kubectl get nodes.
	longestExec, longestAPI time.Duration
}

// clusterLoop uses the cluster in the background until stopped.
type clusterLoop struct {
	// outage is set while the API may be down (a server restart): failed
	// requests count as outageFailures then.
	outage atomic.Bool
	quit   chan struct{}
	done   chan loopStats
	once   sync.Once
	stats  loopStats
}

// streaks logs, per check of the background loop, when it starts failing
// (with the first error) and when it works again (with how many rounds
// failed), rather than every failure.
type streaks struct {
	t       *testing.T
	failing map[string]int       // check → rounds failed in a row
	since   map[string]time.Time // check → first failure of the streak
	longest map[string]time.Duration
}

func (s *streaks) note(check string, err error) {
	stamp := time.Now().Format(time.TimeOnly + ".000")
	switch n := s.failing[check]; {
	case err != nil && n == 0:
		s.since[check] = time.Now()
		s.t.Logf("%s background loop: %s starts failing: %v", stamp, check, err)
	case err == nil && n > 0:
		s.t.Logf("%s background loop: %s works again after %d failed rounds in %s", stamp, check, n, time.Since(s.since[check]).Round(time.Second))
	}
	if err != nil || s.failing[check] > 0 { // until now, failing
		s.longest[check] = max(s.longest[check], time.Since(s.since[check]))
	}
	if err != nil {
		s.failing[check]++
	} else {
		s.failing[check] = 0
	}
}

// end logs the checks still failing.
func (s *streaks) end() {
	for check, n := range s.failing {
		if n > 0 {
			s.t.Logf("background loop: %s still failing at the end, %d rounds in a row since %s", check, n, s.since[check].Format(time.TimeOnly))
		}
	}
}

// useCluster starts a loop that, every 3 s (at most 300 rounds, 20
// minutes), lists the nodes and their leases with a client made afresh
// from the admin kubeconfig, runs kubectl get nodes and execs into each
// of pods, counting the failures and logging when each check starts and
// stops failing. A round counts a node not Ready if its Ready condition
// is not True or it has not renewed its lease for 40 s (the grace after
// which the controller-manager would mark it, if it runs). It ends at
// stop, or at the test's cleanup.
func useCluster(t *testing.T, srv *harness.Node, pods ...string) *clusterLoop {
	t.Helper()
	l := &clusterLoop{quit: make(chan struct{}), done: make(chan loopStats, 1)}
	go func() {
		var s loopStats
		st := &streaks{t: t, failing: map[string]int{}, since: map[string]time.Time{}, longest: map[string]time.Duration{}}
		begin := time.Now()
		defer func() {
			st.end()
			for _, pod := range pods {
				s.longestExec = max(s.longestExec, st.longest["kubectl exec "+pod])
			}
			s.longestAPI = st.longest["kubectl get nodes"]
			s.took = time.Since(begin)
			l.done <- s
		}()
		for s.rounds < 300 && time.Since(begin) < 20*time.Minute {
			s.rounds++
			apiFailed := func() {
				if l.outage.Load() {
					s.outageFailures++
				} else {
					s.apiFailures++
				}
			}
			notReady, err := nodesNotReady(srv)
			st.note("listing the nodes", err)
			if err != nil {
				apiFailed()
			} else {
				var e error
				if len(notReady) > 0 {
					s.notReady++
					e = fmt.Errorf("not Ready or not heartbeating: %s", strings.Join(notReady, "; "))
				}
				st.note("both nodes Ready", e)
			}
			_, err = kubectl(srv, 20*time.Second, "get", "nodes", "-o", "name")
			st.note("kubectl get nodes", err)
			if err != nil {
				apiFailed()
			}
			for _, pod := range pods {
				out, err := kubectl(srv, 20*time.Second, "exec", pod, "--", "/echo", "echo-cmd", "hi")
				if err == nil && out != "hi\n" {
					err = fmt.Errorf("output %q", out)
				}
				st.note("kubectl exec "+pod, err)
				if err != nil {
					s.execFailures++
				}
			}
			select {
			case <-l.quit:
				return
			case <-time.After(3 * time.Second):
			}
		}
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

// stop ends the loop and returns what it saw.
func (l *clusterLoop) stop() loopStats {
	l.once.Do(func() {
		close(l.quit)
		l.stats = <-l.done
	})
	return l.stats
}

// nodesNotReady lists the nodes and their leases with a client made
// afresh from srv's admin kubeconfig as it is on disk now, and returns
// those not Ready or whose lease is older than 40 s (want both nodes).
func nodesNotReady(srv *harness.Node) ([]string, error) {
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
	leases, err := c.CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	renewed := map[string]time.Time{}
	for _, l := range leases.Items {
		if l.Spec.RenewTime != nil {
			renewed[l.Name] = l.Spec.RenewTime.Time
		}
	}
	var out []string
	for _, name := range []string{serverName, agentName} {
		ready := false
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if n.Name == name && cond.Type == corev1.NodeReady {
					ready = cond.Status == corev1.ConditionTrue
				}
			}
		}
		at, leased := renewed[name]
		switch age := time.Since(at); {
		case !ready:
			out = append(out, name+" not Ready")
		case leased && age > 40*time.Second: // a lease not listed yet is not counted
			out = append(out, fmt.Sprintf("%s's lease renewed %s ago", name, age.Round(time.Second)))
		}
	}
	return out, nil
}

// kubectl runs kubectl with srv's admin kubeconfig in srv, killed after
// timeout; a failure returns its stderr. Unlike srv.Exec it never fails
// the test, so the background loop may call it.
func kubectl(srv *harness.Node, timeout time.Duration, args ...string) (string, error) {
	cmd := srv.Command(harness.Options{}, append([]string{srv.Bin, "kubectl", "--kubeconfig", srv.Kubeconfig, "--request-timeout", "15s"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(timeout, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()
	timer.Stop()
	if err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// createToken makes an agent join token on srv.
func createToken(t *testing.T, srv *harness.Node) string {
	t.Helper()
	r := srv.Exec(time.Minute, harness.Options{}, "token", "create", "--data-dir", srv.DataDir, "--description", "made before the CA rotation")
	tok := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || tok == "" || strings.Contains(tok, "\n") {
		t.Fatalf("token create: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	return tok
}

func nodeAnnotation(t *testing.T, srv *harness.Node, name string) string {
	t.Helper()
	n, err := srv.Client().CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Annotations[trustAnnotation]
}

// podFile reads a file of pod's service-account volume on node n, in the
// node's mount namespace (the kubelet mounts the volume there; the test
// image has no cat).
func podFile(n *harness.Node, pod podInfo, name string) ([]byte, error) {
	glob := filepath.Join(n.DataDir, "agent", "kubelet", "pods", pod.UID, "volumes", "kubernetes.io~projected", "*", name)
	out, err := n.Command(harness.Options{}, "sh", "-c", "cat "+glob).Output()
	if err == nil && len(out) == 0 {
		err = errors.New("empty")
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", glob, err)
	}
	return out, nil
}

// podGet requests /api from srv's apiserver as a pod does: trusting caPEM,
// with the bearer token.
func podGet(srv *harness.Node, caPEM []byte, token string) (int, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return 0, errors.New("no certificate in ca.crt")
	}
	return get(srv, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, strings.TrimSpace(token))
}

// apiGet requests /api from srv's apiserver trusting ca, with the client
// certificate cert (if not nil) and the bearer token (if not empty).
func apiGet(srv *harness.Node, ca *x509.Certificate, cert *tls.Certificate, token string) (int, error) {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return get(srv, cfg, token)
}

func get(srv *harness.Node, cfg *tls.Config, token string) (int, error) {
	tr := &http.Transport{DialContext: srv.NS.DialContext, TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+srv.NS.IP+":6443/api", nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// verifyServing handshakes with srv's apiserver trusting only ca.
func verifyServing(srv *harness.Node, ca *x509.Certificate) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := srv.NS.DialContext(ctx, "tcp", srv.NS.IP+":6443")
	if err != nil {
		return err
	}
	defer raw.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: srv.NS.IP, MinVersion: tls.VersionTLS12}).HandshakeContext(ctx)
}

// served is the certificate addr serves now, read from inside n, not
// trusted.
func served(n *harness.Node, addr string) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := n.NS.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // read, compared with the files
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	if peer := conn.ConnectionState().PeerCertificates; len(peer) > 0 {
		return peer[0], nil
	}
	return nil, errors.New("no certificate served")
}

// waitServed waits (at most a minute) until addr serves a certificate ok
// accepts.
func waitServed(t *testing.T, what string, n *harness.Node, addr string, ok func(*x509.Certificate) bool) {
	t.Helper()
	took, done := waitUntil(t, time.Minute, what+" ("+addr+") serving a certificate of the new CA", func() error {
		c, err := served(n, addr)
		switch {
		case err != nil:
			return err
		case !ok(c):
			return fmt.Errorf("serves serial %s from %s", c.SerialNumber, c.Issuer)
		}
		return nil
	})
	if !done {
		return
	}
	t.Logf("%s (%s) serves a certificate of the new CA (waited %s)", what, addr, took.Round(time.Millisecond))
}

// waitUntil tries cond every second until it returns nil or timeout
// passes; then it fails t (not fatally) with what and the last error.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() error) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			t.Errorf("%s: not after %s: %v", what, timeout, err)
			return time.Since(start), false
		}
		time.Sleep(time.Second)
	}
}

func signedBy(c, ca *x509.Certificate) bool {
	return c != nil && ca != nil && c.CheckSignatureFrom(ca) == nil
}

// caFile is the file of CA name in tlsDir (<data-dir>/server/tls).
func caFile(tlsDir, name string) string {
	if name == "etcd" {
		return filepath.Join(tlsDir, "etcd", "server-ca.crt")
	}
	return filepath.Join(tlsDir, name+"-ca.crt")
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readBundle reads the certificates of the PEM file at path; none fails t.
func readBundle(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	certs := parseBundle(readFile(t, path))
	if len(certs) == 0 {
		t.Fatalf("%s: no certificate", path)
	}
	return certs
}

func parseBundle(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// loadKeyPair copies the certificate and key of files (without suffix).
func loadKeyPair(t *testing.T, files string) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(readFile(t, files+".crt"), readFile(t, files+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// kubeconfigCert is the client certificate embedded in the kubeconfig at
// path, for its current context.
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
	certs := parseBundle(cfg.AuthInfos[ctx.AuthInfo].ClientCertificateData)
	if len(certs) == 0 {
		t.Fatalf("%s: no client certificate", path)
	}
	return certs[0]
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

// digits are runs of digits, which problems ignores.
var digits = regexp.MustCompile(`[0-9]+`)

// problems are the distinct ERROR and WARN messages of n's log since
// since (each with its count and first line), at most 20, for failure
// messages.
func problems(n *harness.Node, since time.Time) string {
	data, _ := os.ReadFile(n.LogPath)
	type seen struct {
		first string
		count int
	}
	byMsg := map[string]*seen{}
	var order []string
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, "level=ERROR") && !strings.Contains(l, "level=WARN") {
			continue
		}
		if at, ok := harness.LogTime(l); !ok || at.Before(since) {
			continue
		}
		key := l
		if i := strings.Index(l, "msg="); i >= 0 {
			key = l[i:]
		}
		// The same error about another object, port or time.
		key = digits.ReplaceAllString(key, "#")
		if len(key) > 160 {
			key = key[:160]
		}
		if byMsg[key] == nil {
			byMsg[key] = &seen{first: l}
			order = append(order, key)
		}
		byMsg[key].count++
	}
	var b strings.Builder
	for i, k := range order {
		if i == 20 {
			fmt.Fprintf(&b, "... %d more\n", len(order)-i)
			break
		}
		fmt.Fprintf(&b, "%dx %s\n", byMsg[k].count, byMsg[k].first)
	}
	return b.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
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

// checkEtcdChains fails t unless each etcd leaf of srv is served with the
// old etcd CA's certificate of the new one after it: etcd and the
// apiserver verify with the CAs they read at start until they restart.
func checkEtcdChains(t *testing.T, srv *harness.Node, oldCA, newCA *x509.Certificate) {
	t.Helper()
	for file, ca := range serverLeaves {
		if ca != "etcd" {
			continue
		}
		certs := readBundle(t, filepath.Join(srv.DataDir, file))
		if len(certs) != 2 || !bytes.Equal(certs[1].RawSubjectPublicKeyInfo, newCA.RawSubjectPublicKeyInfo) || !signedBy(certs[1], oldCA) {
			t.Errorf("%s holds %d certificates after the switch; want the leaf and the old etcd CA's certificate of the new", file, len(certs))
		}
	}
}

// checkServerRestart fails t unless srv restarted in place once since
// since (same PID, as systemd sees it) to drop the retired etcd CA, and
// logs how long its API was away.
func checkServerRestart(t *testing.T, srv *harness.Node, pid int, since time.Time) {
	t.Helper()
	restarts := srv.LogLinesSince("restarting the server", since)
	switch {
	case len(restarts) != 1:
		t.Errorf("the server's log has %d \"restarting the server\" since --retire, want 1:\n%s", len(restarts), strings.Join(restarts, "\n"))
	case !strings.Contains(restarts[0], "etcd CA"):
		t.Errorf("the server restarted for another reason: %s", restarts[0])
	default:
		t.Logf("the server restarted: %s", lastLine(restarts[0]))
	}
	if srv.PID() != pid {
		t.Errorf("server PID %d after --retire, want %d (a restart in place)", srv.PID(), pid)
	}
}
