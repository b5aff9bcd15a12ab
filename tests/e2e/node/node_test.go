//go:build e2e

// Package node_test runs `monokube server` with its node (containerd, runc,
// kubelet, kube-proxy, CNI) inside namespaces the test creates, and checks
// that real pods run from local image tarballs, survive monokube and
// containerd restarts, and are reachable through Services.
package node_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/monokube/monokube/tests/harness"
)

func TestNode(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	n := harness.NewNode(t, harness.NewNetwork(t), 2)
	n.StageImages(map[string][]byte{"broken.tar": []byte("this is not a tar archive\n")})
	t.Run("a failed first start puts the host back", func(t *testing.T) { checkFailedStart(t, n) })
	n.StartServerNode()
	t.Logf("start to /readyz: %s", n.WaitReadyz(2*time.Minute))
	t.Logf("start to node Ready: %s", n.WaitNodeReady(3*time.Minute))

	t.Run("corrupt tarball reported and skipped", func(t *testing.T) {
		log := readLog(t, n)
		if !strings.Contains(log, "broken.tar") || !strings.Contains(log, "cannot be imported") {
			t.Errorf("no report naming broken.tar in the log:\n%s", n.LogTail(40))
		}
	})
	n.Kubectl("apply", "-f", n.EchoDeployment("echo", 1))
	t.Logf("pod create to Running: %s", n.WaitRunning(2*time.Minute, "app=echo", 1))
	pod := podName(n, "app=echo")

	t.Run("nothing unauthenticated on the node IP", func(t *testing.T) { checkNodePorts(t, n) })
	t.Run("logs", func(t *testing.T) {
		if out := n.Kubectl("logs", pod); !strings.Contains(out, "echo listening on :8080") {
			t.Errorf("kubectl logs = %q", out)
		}
	})
	t.Run("exec", func(t *testing.T) {
		if out := n.Kubectl("exec", pod, "--", "/echo", "echo-cmd", "hi", "there"); out != "hi there\n" {
			t.Errorf("kubectl exec = %q, want %q", out, "hi there\n")
		}
	})
	t.Run("crictl and ctr", func(t *testing.T) {
		r := n.Exec(time.Minute, n.Local(), "crictl", "ps", "--name", "echo", "-q")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) == "" {
			t.Errorf("monokube crictl ps: exit %d, stdout %q\n%s", r.Code, r.Stdout, r.Stderr)
		}
		r = n.Exec(time.Minute, n.Local(), "ctr", "images", "ls", "-q")
		if r.Code != 0 || !strings.Contains(r.Stdout, harness.EchoImage) || !strings.Contains(r.Stdout, "monokube.local/pause:") {
			t.Errorf("monokube ctr images ls: exit %d, stdout %q\n%s", r.Code, r.Stdout, r.Stderr)
		}
	})
	t.Run("port-forward", func(t *testing.T) { checkPortForward(t, n, pod) })
	// From a pod: the node itself has blackhole routes for the service
	// CIDR (and, in this test, a blackhole default route), so its own
	// sockets cannot connect to a ClusterIP.
	t.Run("ClusterIP service", func(t *testing.T) {
		ip := n.Kubectl("get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
		if out := n.Kubectl("exec", pod, "--", "/echo", "get", "http://"+ip+":8080/"); !strings.HasPrefix(out, "hello from "+pod) {
			t.Errorf("GET ClusterIP from the pod = %q", out)
		}
	})
	t.Run("NodePort service", func(t *testing.T) {
		port := n.Kubectl("get", "service", "echo", "-o", "jsonpath={.spec.ports[0].nodePort}")
		expectHello(t, n, n.NS.IP+":"+port, pod)
	})

	before := containerStarts(t, n, "app=echo")
	t.Run("containerd killed is restarted, pods intact", func(t *testing.T) {
		old := n.ContainerdPID()
		if old == 0 {
			t.Fatal("no containerd child process of monokube")
		}
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		n.WaitFor(time.Minute, "a new containerd", func(context.Context) (bool, error) {
			pid := n.ContainerdPID()
			return pid != 0 && pid != old, nil
		})
		n.WaitFor(time.Minute, "exec after containerd restart", func(context.Context) (bool, error) {
			r := n.Exec(20*time.Second, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "exec", pod, "--", "/echo", "echo-cmd", "back")
			return r.Stdout == "back\n", fmt.Errorf("exit %d: %s", r.Code, r.Stderr)
		})
		checkUnchanged(t, before, containerStarts(t, n, "app=echo"))
	})

	code, took := n.Stop(10 * time.Second)
	t.Logf("SIGTERM to exit: %s", took)
	if code != 0 {
		t.Fatalf("exit code after SIGTERM = %d\n%s", code, n.LogTail(30))
	}
	notes := listenNotify(t, n)
	n.StartServerNode()
	n.Env = nil
	t.Logf("restart to /readyz: %s", n.WaitReadyz(2*time.Minute))
	t.Logf("restart to node Ready: %s", n.WaitNodeReady(3*time.Minute))
	t.Run("systemd hears READY=1 once, when every component is ready", func(t *testing.T) { checkNotify(t, n, notes) })
	t.Run("unchanged tarballs are not imported again", func(t *testing.T) {
		if got := strings.Count(readLog(t, n), "imported image tarball"); got != 1 {
			t.Errorf("echo.tar imported %d times over two starts, want once", got)
		}
	})
	t.Run("kubectl uses /etc/monokube/kubeconfig.yaml by default", func(t *testing.T) {
		kc, err := os.ReadFile(n.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		// /etc/monokube is private to the node: this is its own copy.
		dst := filepath.Join(n.Dir, "host", "etc", "monokube", "kubeconfig.yaml")
		if err := os.WriteFile(dst, kc, 0o600); err != nil {
			t.Fatal(err)
		}
		n.WaitFor(time.Minute, "kubectl get --raw /readyz without --kubeconfig", func(context.Context) (bool, error) {
			r := n.Exec(time.Minute, harness.Options{}, "kubectl", "get", "--raw", "/readyz")
			return r.Code == 0 && r.Stdout == "ok", fmt.Errorf("exit %d, %q: %.200s", r.Code, r.Stdout, r.Stderr)
		})
	})
	t.Run("restart keeps containers", func(t *testing.T) {
		n.WaitRunning(2*time.Minute, "app=echo", 1)
		checkUnchanged(t, before, containerStarts(t, n, "app=echo"))
		expectHello(t, n, n.NS.IP+":"+n.Kubectl("get", "service", "echo", "-o", "jsonpath={.spec.ports[0].nodePort}"), pod)
	})
	if code, _ := n.Stop(10 * time.Second); code != 0 {
		t.Fatalf("exit code after second SIGTERM = %d\n%s", code, n.LogTail(30))
	}
}

// checkFailedStart starts the node with a kubelet flag that does not
// exist: the start fails at the kubelet, after the control plane ran, and
// must say which flag to fix, remove the blackhole routes and turn off the
// forwarding it turned on, and leave nothing that stops the next start.
func checkFailedStart(t *testing.T, n *harness.Node) {
	if routes, fwd := nodeHostState(t, n); routes != "" || fwd != "0" {
		t.Fatalf("a fresh node netns has blackhole routes %q and ip_forward %s; want none and 0", routes, fwd)
	}
	n.StartServerNode("--kubelet-arg", "no-such-flag=1")
	select {
	case <-n.Exited():
	case <-time.After(3 * time.Minute):
		t.Fatalf("a start with a bad kubelet flag did not fail within 3m\n%s", n.LogTail(30))
	}
	if code, _ := n.Stop(time.Second); code == 0 {
		t.Errorf("exit code 0 after a failed start")
	}
	log := readLog(t, n)
	for _, want := range []string{"unknown flag: --no-such-flag", "check --kubelet-arg",
		"removed the blackhole routes this start added", "turned IPv4 forwarding back off"} {
		if !strings.Contains(log, want) {
			t.Errorf("the failed start's log does not say %q\n%s", want, n.LogTail(30))
		}
	}
	if routes, fwd := nodeHostState(t, n); routes != "" || fwd != "0" {
		t.Errorf("after a failed start: blackhole routes %q, ip_forward %s; want none and 0", routes, fwd)
	}
}

// nodeHostState is the routes monokube adds (proto 109) and the IPv4
// forwarding setting in n's network namespace.
func nodeHostState(t *testing.T, n *harness.Node) (routes, forwarding string) {
	t.Helper()
	out, err := exec.Command("ip", "-n", n.NS.Name, "route", "show", "proto", "109").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route: %v: %s", err, out)
	}
	err = n.NS.Do(func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		forwarding = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out)), forwarding
}

// notification is one datagram on the node's notify socket, and whether
// the log said every component of this start was ready when it came.
type notification struct {
	msg      string
	allReady bool
}

// allReadyLine is what the group logs once every component is ready.
const allReadyLine = "all components ready"

// listenNotify makes a notify socket, as systemd does for a Type=notify
// unit, and sets it for n's next start.
func listenNotify(t *testing.T, n *harness.Node) <-chan notification {
	sock := filepath.Join(n.Dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	before := strings.Count(readLog(t, n), allReadyLine)
	notes := make(chan notification, 16)
	go func() {
		defer close(notes)
		buf := make([]byte, 4096)
		for range cap(notes) {
			got, err := conn.Read(buf)
			if err != nil {
				return
			}
			log, _ := os.ReadFile(n.LogPath)
			notes <- notification{msg: string(buf[:got]), allReady: strings.Count(string(log), allReadyLine) > before}
		}
	}()
	n.Env = []string{"NOTIFY_SOCKET=" + sock}
	return notes
}

// checkNotify: one READY=1, sent once the group was ready (the kubelet,
// in-process, would send its own as soon as it starts).
func checkNotify(t *testing.T, n *harness.Node, notes <-chan notification) {
	var got []notification
	deadline := time.After(time.Minute)
	for len(got) == 0 || !got[0].allReady && len(got) < 2 {
		select {
		case m := <-notes:
			got = append(got, m)
		case <-deadline:
			t.Fatalf("notify socket: got %+v within a minute, want READY=1\n%s", got, n.LogTail(20))
		}
	}
	// Anything sent after the first comes within moments of it.
	select {
	case m := <-notes:
		got = append(got, m)
	case <-time.After(3 * time.Second):
	}
	if len(got) != 1 || got[0].msg != "READY=1" || !got[0].allReady {
		t.Errorf("notify socket got %+v; want one READY=1, after %q", got, allReadyLine)
	}
}

func podName(n *harness.Node, selector string) string {
	return n.Kubectl("get", "pods", "-l", selector, "-o", "jsonpath={.items[0].metadata.name}")
}

// containerStarts maps each container to its restart count and start time.
func containerStarts(t *testing.T, n *harness.Node, selector string) map[string]string {
	t.Helper()
	pods, err := n.Client().CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		for _, s := range p.Status.ContainerStatuses {
			started := ""
			if s.State.Running != nil {
				started = s.State.Running.StartedAt.String()
			}
			out[p.Name+"/"+s.Name] = fmt.Sprintf("restarts=%d started=%s id=%s", s.RestartCount, started, s.ContainerID)
		}
	}
	return out
}

func checkUnchanged(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if !strings.HasPrefix(v, "restarts=0 ") {
			t.Errorf("%s had restarted already: %s", k, v)
		}
		if after[k] != v {
			t.Errorf("container %s changed: before %s, after %s", k, v, after[k])
		}
	}
}

func expectHello(t *testing.T, n *harness.Node, addr, pod string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n.NS.DialContext}}
	n.WaitFor(30*time.Second, "GET http://"+addr, func(ctx context.Context) (bool, error) {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.HasPrefix(string(body), "hello from "+pod), fmt.Errorf("body %q", body)
	})
}

func checkPortForward(t *testing.T, n *harness.Node, pod string) {
	cmd := n.Command(harness.Options{}, n.Bin, "kubectl", "--kubeconfig", n.Kubeconfig, "port-forward", pod, "18080:8080")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	expectHello(t, n, "127.0.0.1:18080", pod)
}

func readLog(t *testing.T, n *harness.Node) string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
