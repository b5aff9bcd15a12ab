//go:build e2e

// Package addons_test runs `monokube server` with its node inside namespaces
// the test creates and checks the default addons, from embedded images and
// with no registry: cluster DNS, local-path volumes, metrics-server, and
// --disable.
package addons_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/monokube/monokube/tests/harness"
)

// Images built into monokube by the Makefile.
const (
	busyboxImage = "monokube.local/busybox:1.35"
	imagePrefix  = "monokube.local/"
)

var systemDeployments = []string{"coredns", "local-path-provisioner", "metrics-server"} //nolint:gochecknoglobals // fixed list

func TestAddons(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	n := harness.NewNode(t, harness.NewNetwork(t), 2)
	n.StageImages(nil)
	n.StartServerNode()
	t.Logf("start to /readyz: %s", n.WaitReadyz(2*time.Minute))
	t.Logf("start to node Ready: %s", n.WaitNodeReady(3*time.Minute))
	t.Logf("start to addons available: %s", n.WaitDeploymentsAvailable(4*time.Minute, "kube-system", systemDeployments...))

	t.Run("kube-system runs only embedded images", func(t *testing.T) { checkNoPulls(t, n) })
	n.Kubectl("apply", "-f", n.EchoDeployment("echo", 1), "-f", toolbox(t, n))
	n.WaitRunning(2*time.Minute, "app in (echo, toolbox)", 2)

	t.Run("DNS", func(t *testing.T) { checkDNS(t, n) })
	nodeName := n.Kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	t.Run("node names resolve", func(t *testing.T) {
		n.WaitFor(time.Minute, "NodeHosts in the coredns ConfigMap", func(ctx context.Context) (bool, error) {
			cm, err := n.Client().CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return strings.Contains(cm.Data["NodeHosts"], n.NS.IP+" "+nodeName), fmt.Errorf("NodeHosts = %q", cm.Data["NodeHosts"])
		})
		n.WaitFor(3*time.Minute, "node name in DNS", func(context.Context) (bool, error) {
			// The trailing dot: busybox nslookup tries only the search
			// path for a name with fewer dots than ndots (5).
			out, err := lookup(n, nodeName+".")
			return strings.Contains(out, n.NS.IP), err
		})
	})
	t.Run("PVC keeps data across pod recreate", func(t *testing.T) { checkVolume(t, n) })
	t.Run("kubectl top", func(t *testing.T) {
		took := n.WaitFor(3*time.Minute, "kubectl top nodes", func(context.Context) (bool, error) {
			r := n.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "top", "nodes", "--no-headers")
			return r.Code == 0 && strings.HasPrefix(r.Stdout, nodeName+" "), fmt.Errorf("exit %d: %s", r.Code, r.Stderr)
		})
		t.Logf("kubectl top nodes answered after another %s", took)
		n.WaitFor(2*time.Minute, "kubectl top pods", func(context.Context) (bool, error) {
			r := n.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "top", "pods", "-n", "kube-system", "--no-headers")
			return r.Code == 0 && strings.Contains(r.Stdout, "coredns-"), fmt.Errorf("exit %d: %s", r.Code, r.Stderr)
		})
		// The aggregator verified metrics-server's certificate to get here.
		r := n.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "get", "apiservice", "v1beta1.metrics.k8s.io",
			"-o", "jsonpath={.spec.insecureSkipTLSVerify}/{.spec.caBundle}")
		if skip, ca, _ := strings.Cut(r.Stdout, "/"); r.Code != 0 || skip == "true" || ca == "" {
			t.Errorf("metrics APIService: %q (exit %d), want a caBundle and no insecureSkipTLSVerify\n%s", r.Stdout, r.Code, r.Stderr)
		}
	})
	t.Run("disable removes a deployed addon", func(t *testing.T) { checkDisable(t, n) })
	if code, _ := n.Stop(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// toolbox is a long-running busybox pod (the helper image local-path uses)
// for DNS lookups; it returns the manifest's path.
func toolbox(t *testing.T, n *harness.Node) string {
	t.Helper()
	return writeManifest(t, n, "toolbox", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: toolbox, labels: {app: toolbox}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: %s
    imagePullPolicy: Never
    command: [sleep, "3600"]
`, busyboxImage))
}

func writeManifest(t *testing.T, n *harness.Node, name, body string) string {
	t.Helper()
	path := filepath.Join(n.Dir, name+".yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkNoPulls: every kube-system container runs an image of ours, and no
// pull was ever attempted.
func checkNoPulls(t *testing.T, n *harness.Node) {
	ctx := context.Background()
	pods, err := n.Client().CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) < len(systemDeployments) {
		t.Errorf("%d kube-system pods, want at least %d", len(pods.Items), len(systemDeployments))
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s is %s", p.Name, p.Status.Phase)
		}
		for _, c := range p.Spec.Containers {
			if !strings.HasPrefix(c.Image, imagePrefix) {
				t.Errorf("pod %s runs image %s, not an embedded one", p.Name, c.Image)
			}
		}
	}
	events, err := n.Client().CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "reason=Pulling"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		t.Errorf("image pull attempted: %s: %s", e.InvolvedObject.Name, e.Message)
	}
}

// lookup runs busybox nslookup in the toolbox pod.
func lookup(n *harness.Node, name string) (string, error) {
	r := n.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", n.Kubeconfig, "exec", "toolbox", "--", "nslookup", name)
	if r.Code != 0 {
		return r.Stdout, fmt.Errorf("nslookup %s: exit %d: %s %s", name, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout, nil
}

func checkDNS(t *testing.T, n *harness.Node) {
	kubeIP := n.Kubectl("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}")
	echoIP := n.Kubectl("get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
	for name, ip := range map[string]string{
		"kubernetes.default.svc.cluster.local": kubeIP,
		"echo.default.svc.cluster.local":       echoIP,
	} {
		out, err := lookup(n, name)
		if err != nil || !strings.Contains(out, ip) {
			t.Errorf("nslookup %s: want %s in\n%s (%v)", name, ip, out, err)
		}
	}
	// A short Service name, through the pod's search path, from the echo
	// pod's Go resolver, then an HTTP request to it.
	pod := strings.TrimPrefix(n.Kubectl("get", "pods", "-l", "app=echo", "-o", "name"), "pod/")
	pod = strings.TrimSpace(pod)
	if out := n.Kubectl("exec", pod, "--", "/echo", "get", "http://echo:8080/"); !strings.HasPrefix(out, "hello from "+pod) {
		t.Errorf("GET http://echo:8080/ from a pod = %q", out)
	}
	if out, err := lookup(n, "no-such-service.default.svc.cluster.local"); err == nil {
		t.Errorf("a missing name resolved:\n%s", out)
	}
}

// checkVolume writes through a local-path PVC, recreates the pod and reads
// the data back; it also finds the volume under the data dir.
func checkVolume(t *testing.T, n *harness.Node) {
	pvc := writeManifest(t, n, "pvc", `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 10Mi}}
`)
	pod := writeManifest(t, n, "volume-pod", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: writer, labels: {app: writer}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: %s
    imagePullPolicy: Never
    command: [sh, -c, "test -f /data/keep || echo kept-across-pods > /data/keep; exec sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
`, busyboxImage))
	n.Kubectl("apply", "-f", pvc, "-f", pod)
	took := n.WaitRunning(3*time.Minute, "app=writer", 1)
	t.Logf("PVC pod Running after %s", took)
	if phase := n.Kubectl("get", "pvc", "data", "-o", "jsonpath={.status.phase}"); phase != "Bound" {
		t.Fatalf("PVC phase %q, want Bound", phase)
	}
	n.Kubectl("delete", "pod", "writer", "--wait")
	n.Kubectl("apply", "-f", pod)
	n.WaitRunning(2*time.Minute, "app=writer", 1)
	if out := n.Kubectl("exec", "writer", "--", "cat", "/data/keep"); out != "kept-across-pods\n" {
		t.Errorf("data after pod recreate = %q", out)
	}
	matches, _ := filepath.Glob(filepath.Join(n.DataDir, "storage", "pvc-*", "keep"))
	if len(matches) != 1 {
		t.Errorf("volume data under %s/storage: found %v, want one pvc-*/keep", n.DataDir, matches)
	}
	n.Kubectl("delete", "pod", "writer", "--wait")
	n.Kubectl("delete", "pvc", "data", "--wait")
	n.WaitFor(2*time.Minute, "volume deleted from disk", func(context.Context) (bool, error) {
		matches, _ := filepath.Glob(filepath.Join(n.DataDir, "storage", "pvc-*"))
		return len(matches) == 0, fmt.Errorf("left: %v", matches)
	})
}

// checkDisable restarts the server with --disable metrics-server and waits
// for its Deployment and APIService to be deleted; the others stay.
func checkDisable(t *testing.T, n *harness.Node) {
	if code, _ := n.Stop(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	n.StartServerNode("--disable", "metrics-server")
	n.WaitReadyz(2 * time.Minute)
	c := n.Client()
	took := n.WaitFor(time.Minute, "metrics-server removed", func(ctx context.Context) (bool, error) {
		_, err := c.AppsV1().Deployments("kube-system").Get(ctx, "metrics-server", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("deployment still there (%w)", err)
		}
		err = c.Discovery().RESTClient().Get().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io").Do(ctx).Error()
		return apierrors.IsNotFound(err), fmt.Errorf("APIService: %w", err)
	})
	t.Logf("metrics-server removed %s after /readyz", took)
	if _, err := os.Stat(filepath.Join(n.DataDir, "server", "manifests", "metrics-server.yaml")); !os.IsNotExist(err) {
		t.Errorf("metrics-server.yaml still in the manifests dir: %v", err)
	}
	n.WaitDeploymentsAvailable(time.Minute, "kube-system", "coredns", "local-path-provisioner")
}
