package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EchoImage is the test image built by `make test-images`.
const EchoImage = "monokube.local/echo:test"

// StageImages copies the test image tarball into the node's images
// directory, plus extra files (name → content), before the node starts.
func (n *Node) StageImages(extra map[string][]byte) {
	n.t.Helper()
	dir := filepath.Join(n.DataDir, "agent", "images")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		n.t.Fatal(err)
	}
	src := os.Getenv("MONOKUBE_TEST_IMAGES")
	if src == "" {
		src = "../../../build/test-images"
	}
	data, err := os.ReadFile(filepath.Join(src, "echo.tar"))
	if err != nil {
		n.t.Fatalf("test image missing (make test-images builds it): %v", err)
	}
	files := map[string][]byte{"echo.tar": data}
	for k, v := range extra {
		files[k] = v
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			n.t.Fatal(err)
		}
	}
}

// StageImageFile copies the image tarball src into the node's images
// directory, for import at start, before the node starts.
func (n *Node) StageImageFile(src string) {
	n.t.Helper()
	dir := filepath.Join(n.DataDir, "agent", "images")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		n.t.Fatal(err)
	}
	if err := copyFile(src, filepath.Join(dir, filepath.Base(src))); err != nil {
		n.t.Fatalf("stage image %s: %v", src, err)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// WaitNodeReady waits for the cluster's only node to be Ready.
func (n *Node) WaitNodeReady(timeout time.Duration) time.Duration {
	n.t.Helper()
	c := n.Client()
	return n.WaitFor(timeout, "node Ready", func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, err
		}
		for _, cond := range nodes.Items[0].Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, fmt.Errorf("condition Ready=%s: %s", cond.Status, cond.Message)
			}
		}
		return false, nil
	})
}

// WaitRunning waits until want pods matching selector in namespace
// default are Running and Ready.
func (n *Node) WaitRunning(timeout time.Duration, selector string, want int) time.Duration {
	n.t.Helper()
	c := n.Client()
	return n.WaitFor(timeout, "pods "+selector+" Running", func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && podReady(p) {
				running++
			}
		}
		return running == want, fmt.Errorf("%d of %d running", running, len(pods.Items))
	})
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// EchoDeployment is a manifest of replicas echo pods behind a NodePort
// Service, both named name; it returns the file's path.
func (n *Node) EchoDeployment(name string, replicas int) string {
	n.t.Helper()
	path := filepath.Join(n.Dir, name+".yaml")
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: %[3]s
        imagePullPolicy: Never
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  type: NodePort
  selector: {app: %[1]s}
  ports: [{port: 8080, targetPort: 8080}]
`, name, replicas, EchoImage)
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		n.t.Fatal(err)
	}
	return path
}

// ContainerdPID is the node's containerd child process, 0 if none runs:
// the child of monokube started as "<monokube> containerd ...".
func (n *Node) ContainerdPID() int {
	out, err := exec.Command("ps", "-o", "pid=,args=", "--ppid", fmt.Sprint(n.PID())).Output()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "containerd" {
			var pid int
			if _, err := fmt.Sscan(f[0], &pid); err == nil {
				return pid
			}
		}
	}
	return 0
}

// ShimPIDs are the node's containerd-shim-runc-v2 processes.
func (n *Node) ShimPIDs() []int {
	var pids []int
	for _, pid := range netnsPIDs(n.NS.Name) {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.HasPrefix(string(comm), "containerd-shim") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// WaitDeploymentsAvailable waits until each named Deployment in namespace
// has all its replicas updated and available.
func (n *Node) WaitDeploymentsAvailable(timeout time.Duration, namespace string, names ...string) time.Duration {
	n.t.Helper()
	c := n.Client()
	return n.WaitFor(timeout, "deployments "+strings.Join(names, ", ")+" available", func(ctx context.Context) (bool, error) {
		for _, name := range names {
			d, err := c.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			if d.Status.AvailableReplicas != want || d.Status.UpdatedReplicas != want {
				return false, fmt.Errorf("%s: %d of %d available", name, d.Status.AvailableReplicas, want)
			}
		}
		return true, nil
	})
}

// AllPIDs are every process of the node: monokube, containerd, the shims
// and all their descendants (the containers' processes).
func (n *Node) AllPIDs() []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the parenthesised command: state, ppid, ...
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], pid)
			}
		}
	}
	var all []int
	queue := append([]int{n.PID()}, n.ShimPIDs()...)
	seen := map[int]bool{}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		all = append(all, pid)
		queue = append(queue, children[pid]...)
	}
	return all
}

// JoinToken waits for the server's join token and returns it.
func (n *Node) JoinToken() string {
	n.t.Helper()
	var token string
	n.WaitFor(time.Minute, "join token", func(context.Context) (bool, error) {
		data, err := os.ReadFile(filepath.Join(n.DataDir, "server", "token"))
		token = strings.TrimSpace(string(data))
		return err == nil, err
	})
	return token
}

// WaitNodesReady waits until want nodes of srv's cluster are Ready; n is
// the node the wait is for (its log is shown on failure).
func (n *Node) WaitNodesReady(srv *Node, want int) {
	n.t.Helper()
	c := srv.Client()
	n.WaitFor(3*time.Minute, fmt.Sprintf("%d nodes Ready", want), func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == want, fmt.Errorf("%d of %d nodes Ready", ready, len(nodes.Items))
	})
}

// PinnedEcho writes an echo Deployment whose one pod runs on node and
// returns the manifest's path.
func (n *Node) PinnedEcho(name, node string) string {
	n.t.Helper()
	path := filepath.Join(n.Dir, name+".yaml")
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[2]s}
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: %[3]s
        imagePullPolicy: Never
`, name, node, EchoImage)
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		n.t.Fatal(err)
	}
	return path
}

// WaitNodesHoldImage waits until every node of the cluster reports image
// among its images (the kubelet lists what containerd holds).
func (n *Node) WaitNodesHoldImage(timeout time.Duration, image string) {
	n.t.Helper()
	c := n.Client()
	n.WaitFor(timeout, "every node holding "+image, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, node := range nodes.Items {
			if !holdsImage(node, image) {
				return false, fmt.Errorf("node %s does not list it yet", node.Name)
			}
		}
		return len(nodes.Items) > 0, nil
	})
}

func holdsImage(node corev1.Node, image string) bool {
	for _, img := range node.Status.Images {
		for _, name := range img.Names {
			if name == image {
				return true
			}
		}
	}
	return false
}

// Local is the options with which a command run inside n finds n's node
// (its data and run dirs), as ctr, crictl and images need.
func (n *Node) Local() Options {
	return Options{Env: []string{"MONOKUBE_DATA_DIR=" + n.DataDir, "MONOKUBE_RUN_DIR=" + n.RunDir}}
}

// MirrorServedBlob reports whether n's embedded registry mirror logged
// serving a whole blob (GET, 200) to the node named peer.
func (n *Node) MirrorServedBlob(peer string) bool {
	for _, l := range n.LogLinesSince("peer=system:node:"+peer, time.Time{}) {
		if strings.Contains(l, "/blobs/sha256:") && strings.Contains(l, "method=GET") && strings.Contains(l, "status=200") {
			return true
		}
	}
	return false
}
