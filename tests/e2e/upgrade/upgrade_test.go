//go:build e2e

// Package upgrade_test upgrades a server and an agent by replacing the
// binary (bin/monokube → make next's build, the same code stamped with
// another version) and restarting them, and checks that no container
// restarts. It also checks the version rules with a faked record of the
// last version: a newer Kubernetes minor is refused, an older one drains
// the node first.
package upgrade_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilversion "k8s.io/apimachinery/pkg/util/version"

	"github.com/monokube/monokube/internal/upgrade"
	"github.com/monokube/monokube/tests/harness"
)

// container is what must not change over an upgrade.
type container struct {
	ID       string
	Started  string
	Restarts int32
}

func TestUpgradeByBinarySwap(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	next := os.Getenv("MONOKUBE_NEXT_BIN")
	if next == "" {
		if os.Getenv("E2E") != "" {
			t.Fatal("MONOKUBE_NEXT_BIN is not set: make test-e2e builds it (make next)")
		}
		t.Skip("MONOKUBE_NEXT_BIN not set (make next)")
	}
	network := harness.NewNetwork(t)
	srv := harness.NewNode(t, network, 2)
	agent := harness.NewNode(t, network, 3)
	srvArgs := []string{"--node-name", "server-1", "--disable", "metrics-server,local-storage"}
	srv.StageImages(nil)
	srv.StartServerNode(srvArgs...)
	srv.WaitReadyz(2 * time.Minute)
	agent.StageImages(nil)
	agent.StartAgent(srv, srv.JoinToken(), "agent-1")
	agent.WaitNodesReady(srv, 2)
	for _, node := range []string{"server-1", "agent-1"} {
		srv.Kubectl("apply", "-f", srv.PinnedEcho("echo-"+node, node))
	}
	srv.WaitDeploymentsAvailable(2*time.Minute, "default", "echo-server-1", "echo-agent-1")
	srv.WaitDeploymentsAvailable(time.Minute, "kube-system", "coredns")
	before := containers(t, srv)
	shims := append(srv.ShimPIDs(), agent.ShimPIDs()...)
	oldLaunch := launcherDir(t, srv)

	for _, n := range []*harness.Node{agent, srv} {
		if code, _ := n.Stop(30 * time.Second); code != 0 {
			t.Fatalf("stop: exit %d", code)
		}
		n.Bin = next
	}
	srv.StartServerNode(srvArgs...)
	t.Logf("API back %s after the restart on the new binary", srv.WaitReadyz(time.Minute))
	agent.StartAgent(srv, "", "agent-1")
	waitKubelets(t, srv, "-next")

	t.Run("no container restarted", func(t *testing.T) {
		after := containers(t, srv)
		for pod, c := range before {
			if after[pod] != c {
				t.Errorf("%s: before %+v, after %+v", pod, c, after[pod])
			}
		}
		for _, pid := range shims {
			if err := syscall.Kill(pid, 0); err != nil {
				t.Errorf("shim %d of the old version is gone: %v", pid, err)
			}
		}
	})
	t.Run("the old version's unpacked binary is removed, the helpers in use are kept", func(t *testing.T) {
		srv.WaitFor(time.Minute, "old version dir removed", func(context.Context) (bool, error) {
			_, err := os.Stat(oldLaunch)
			return os.IsNotExist(err), err
		})
		for _, pid := range shims {
			exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if err != nil || strings.HasSuffix(exe, "(deleted)") {
				t.Errorf("shim %d runs %q (%v): its binary was removed", pid, exe, err)
			}
		}
		// Recorded once every component is ready, which may be just after
		// the kubelet reports the new version.
		srv.WaitFor(time.Minute, "version.json records the new version", func(context.Context) (bool, error) {
			v := readRecord(srv)["monokube"]
			return strings.HasSuffix(v, "-next"), fmt.Errorf("version.json records %q", v)
		})
	})
	t.Run("a newer Kubernetes minor version is refused", func(t *testing.T) {
		agent.Stop(30 * time.Second)
		rec := record(t, agent)
		v := utilversion.MustParseGeneric(rec["kubernetes"])
		writeRecord(t, agent, map[string]string{"monokube": "9.9.9", "kubernetes": fmt.Sprintf("v%d.%d.0", v.Major(), v.Minor()+1)})
		agent.StartAgent(srv, "", "agent-1")
		select {
		case <-agent.Exited():
		case <-time.After(time.Minute):
			t.Fatal("agent started over data from a newer Kubernetes minor version")
		}
		if code, _ := agent.Stop(time.Second); code == 0 || !strings.Contains(agent.LogTail(5), "cannot go back a minor version") {
			t.Errorf("exit %d, log:\n%s", code, agent.LogTail(5))
		}
		writeRecord(t, agent, rec)
		agent.StartAgent(srv, "", "agent-1")
		agent.WaitNodesReady(srv, 2)
	})
	t.Run("an older Kubernetes minor version drains the node first", func(t *testing.T) {
		uid := podUID(t, srv, "echo-server-1")
		srv.Stop(30 * time.Second)
		rec := record(t, srv)
		v := utilversion.MustParseGeneric(rec["kubernetes"])
		writeRecord(t, srv, map[string]string{"monokube": "0.0.1", "kubernetes": fmt.Sprintf("v%d.%d.9", v.Major(), v.Minor()-1)})
		srv.StartServerNode(srvArgs...)
		srv.WaitReadyz(time.Minute)
		// The drainer cordons before it evicts: the old pod evicted and the
		// node schedulable without the cordon mark means cordon, drain and
		// uncordon, in that order.
		srv.WaitFor(3*time.Minute, "node uncordoned after the drain", func(ctx context.Context) (bool, error) {
			evicted, err := podEvicted(ctx, srv, "echo-server-1", uid)
			if err != nil {
				return false, err
			}
			n, err := srv.Client().CoreV1().Nodes().Get(ctx, "server-1", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			_, marked := n.Annotations[upgrade.CordonAnnotation]
			done := evicted && !marked && !n.Spec.Unschedulable
			return done, fmt.Errorf("old pod evicted=%v, unschedulable=%v, annotations=%v", evicted, n.Spec.Unschedulable, n.Annotations)
		})
		log, _ := os.ReadFile(srv.LogPath)
		if !strings.Contains(string(log), "cordoning and draining") {
			t.Error("no drain in the log")
		}
		// The minor upgrade snapshotted etcd's data before it started.
		var pre []harness.EtcdSnapshot
		for _, s := range srv.EtcdSnapshots() {
			if s.Kind == "pre-upgrade" && s.Status == "ok" && s.Node == "server-1" && s.Revision > 0 {
				pre = append(pre, s)
			}
		}
		if len(pre) != 1 {
			t.Errorf("pre-upgrade snapshots %+v, want one good one of server-1", srv.EtcdSnapshots())
		}
		srv.WaitFor(2*time.Minute, "the drained pod replaced and running", func(ctx context.Context) (bool, error) {
			pods, err := srv.Client().CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=echo-server-1"})
			if err != nil {
				return false, err
			}
			for _, p := range pods.Items {
				if string(p.UID) != uid && p.DeletionTimestamp == nil && p.Status.Phase == "Running" {
					return true, nil
				}
			}
			return false, fmt.Errorf("%d pods, none new and running", len(pods.Items))
		})
		srv.WaitFor(time.Minute, "version.json records this version", func(context.Context) (bool, error) {
			got := readRecord(srv)["kubernetes"]
			return got == rec["kubernetes"], fmt.Errorf("version.json records %q, want %q", got, rec["kubernetes"])
		})
	})
}

// containers maps every container in the cluster to what identifies its
// run.
func containers(t *testing.T, srv *harness.Node) map[string]container {
	t.Helper()
	pods, err := srv.Client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]container{}
	for _, p := range pods.Items {
		for _, s := range p.Status.ContainerStatuses {
			c := container{ID: s.ContainerID, Restarts: s.RestartCount}
			if s.State.Running != nil {
				c.Started = s.State.Running.StartedAt.String()
			}
			out[p.Namespace+"/"+p.Name+"/"+s.Name] = c
		}
	}
	if len(out) < 3 {
		t.Fatalf("only %d containers", len(out))
	}
	return out
}

// podUID is the UID of the one pod of Deployment app.
func podUID(t *testing.T, srv *harness.Node, app string) string {
	t.Helper()
	pods, err := srv.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods of %s: %v", app, err)
	}
	return string(pods.Items[0].UID)
}

// podEvicted reports whether the pod of app with uid is gone or being
// deleted.
func podEvicted(ctx context.Context, srv *harness.Node, app, uid string) (bool, error) {
	pods, err := srv.Client().CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return false, err
	}
	for _, p := range pods.Items {
		if string(p.UID) == uid {
			return p.DeletionTimestamp != nil, nil
		}
	}
	return true, nil
}

// waitKubelets waits until every node's kubelet reports a version ending
// in suffix and is Ready.
func waitKubelets(t *testing.T, srv *harness.Node, suffix string) {
	t.Helper()
	srv.WaitFor(3*time.Minute, "kubelets on the new version", func(ctx context.Context) (bool, error) {
		nodes, err := srv.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, n := range nodes.Items {
			if !strings.HasSuffix(n.Status.NodeInfo.KubeletVersion, suffix) {
				return false, fmt.Errorf("%s runs %s", n.Name, n.Status.NodeInfo.KubeletVersion)
			}
		}
		return true, nil
	})
	srv.WaitNodesReady(srv, 2)
}

// launcherDir is the version dir the launcher unpacked the running binary
// into.
func launcherDir(t *testing.T, n *harness.Node) string {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", n.PID()))
	if err != nil || !strings.HasPrefix(exe, n.DataDir) {
		t.Fatalf("monokube runs %q (%v), not a binary under the data dir", exe, err)
	}
	return filepath.Dir(exe)
}

func record(t *testing.T, n *harness.Node) map[string]string {
	t.Helper()
	r := readRecord(n)
	if r == nil {
		t.Fatal("no readable version.json")
	}
	return r
}

// readRecord is the node's version.json, nil if it cannot be read.
func readRecord(n *harness.Node) map[string]string {
	var r map[string]string
	data, err := os.ReadFile(filepath.Join(n.DataDir, "version.json"))
	if err != nil || json.Unmarshal(data, &r) != nil {
		return nil
	}
	return r
}

func writeRecord(t *testing.T, n *harness.Node, r map[string]string) {
	t.Helper()
	data, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(n.DataDir, "version.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}
