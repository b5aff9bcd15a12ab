//go:build e2e

// Package turndown_test installs a server and an agent with `monokube
// install` (each node has its own /etc/systemd/system, /usr/local/bin and
// /etc/monokube, and no systemd), runs them as their units would, and
// turns them down: `monokube uninstall` on the agent and `monokube
// killall` on the server must leave each machine as it was before the node
// started.
package turndown_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/monokube/monokube/tests/harness"
)

// state is what killall must undo; uninstall also removes the files.
var state = []string{"processes", "mounts", "links", "routes", "iptables", "cgroups"} //nolint:gochecknoglobals // fixed list

func TestInstallAndTurndown(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	network := harness.NewNetwork(t)
	srv := harness.NewNode(t, network, 2)
	agent := harness.NewNode(t, network, 3)
	srvBefore, agentBefore := srv.Snapshot(), agent.Snapshot()

	t.Run("killall refuses a directory monokube did not make", func(t *testing.T) {
		foreign := filepath.Join(srv.Dir, "srv")
		keep := filepath.Join(foreign, "data", "keep.txt") // data/ passed the old check
		if err := os.MkdirAll(filepath.Dir(keep), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keep, []byte("not monokube's"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"killall", "uninstall"} {
			r := srv.Exec(time.Minute, harness.Options{}, cmd, "--data-dir", foreign, "--run-dir", filepath.Join(srv.Dir, "run-foreign"))
			if r.Code == 0 || !strings.Contains(r.Stderr, "is not a monokube data dir") {
				t.Errorf("%s --data-dir %s: exit %d, want a refusal:\n%s", cmd, foreign, r.Code, r.Stderr)
			}
		}
		if _, err := os.Stat(keep); err != nil {
			t.Error("a file of the foreign dir is gone")
		}
		if err := os.RemoveAll(foreign); err != nil {
			t.Fatal(err)
		}
	})

	srvRoot := filepath.Join(srv.Dir, "host") // what the node sees as /
	install(t, srv, "server", "--write-kubeconfig", srv.Kubeconfig, "--node-name", "server-1",
		"--disable", "metrics-server,local-storage")
	t.Run("install writes binary, config and unit", func(t *testing.T) {
		checkInstalled(t, srvRoot, "monokube.service", "ExecStart=/usr/local/bin/monokube server\n", "node-name: server-1")
	})
	srv.StageImages(nil)
	srv.StartInstalled("/usr/local/bin/monokube", "server")
	srv.WaitReadyz(2 * time.Minute)

	agentRoot := filepath.Join(agent.Dir, "host")
	install(t, agent, "agent", "--server", srv.ServerURL(), "--token", srv.JoinToken(), "--node-name", "agent-1")
	checkInstalled(t, agentRoot, "monokube-agent.service", "ExecStart=/usr/local/bin/monokube agent\n", "token: mk1::")
	agent.StageImages(nil)
	agent.StartInstalled("/usr/local/bin/monokube", "agent")
	agent.WaitNodesReady(srv, 2)
	for _, node := range []string{"server-1", "agent-1"} {
		srv.Kubectl("apply", "-f", srv.PinnedEcho("echo-"+node, node))
	}
	srv.WaitDeploymentsAvailable(2*time.Minute, "default", "echo-server-1", "echo-agent-1")
	srv.WaitDeploymentsAvailable(time.Minute, "kube-system", "coredns")
	t.Run("a running node changes every part of the snapshot", func(t *testing.T) {
		// Else comparing against the snapshot afterwards would prove nothing.
		for _, c := range []struct {
			n      *harness.Node
			before harness.Snapshot
		}{{srv, srvBefore}, {agent, agentBefore}} {
			running := c.n.Snapshot()
			for _, kind := range append(state, "files") {
				if c.before.Diff(running, kind) == "" {
					t.Errorf("%s: %s unchanged while the node runs", c.n.NS.Name, kind)
				}
			}
		}
	})

	t.Run("uninstall on the agent leaves the cluster and no residue", func(t *testing.T) {
		r := agent.Exec(2*time.Minute, harness.Options{}, "uninstall")
		if r.Code != 0 {
			t.Fatalf("uninstall: exit %d\n%s", r.Code, r.Stderr)
		}
		agent.WaitGone(10 * time.Second)
		if diff := agentBefore.Diff(agent.Snapshot(), append(state, "files")...); diff != "" {
			t.Errorf("the agent's machine differs from before it started:\n%s", diff)
		}
		for _, p := range []string{"usr/local/bin/monokube", "usr/local/bin/kubectl", "etc/monokube/config.yaml", "etc/systemd/system/monokube-agent.service"} {
			if _, err := os.Lstat(filepath.Join(agentRoot, p)); err == nil {
				t.Errorf("%s left behind", p)
			}
		}
		if _, err := os.Stat(agent.DataDir); err == nil {
			t.Errorf("data dir %s left behind", agent.DataDir)
		}
		_, err := srv.Client().CoreV1().Nodes().Get(context.Background(), "agent-1", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("node agent-1 still in the cluster: %v", err)
		}
	})

	t.Run("killall on the server leaves no residue and keeps the data", func(t *testing.T) {
		r := srv.Exec(2*time.Minute, harness.Options{}, "killall")
		if r.Code != 0 {
			t.Fatalf("killall: exit %d\n%s", r.Code, r.Stderr)
		}
		select {
		case <-srv.Exited():
		case <-time.After(30 * time.Second):
			t.Fatal("monokube server still running after killall")
		}
		srv.WaitGone(10 * time.Second)
		if diff := srvBefore.Diff(srv.Snapshot(), state...); diff != "" {
			t.Errorf("the server's machine differs from before it started:\n%s", diff)
		}
		if _, err := os.Stat(filepath.Join(srv.DataDir, "server", "db", "etcd")); err != nil {
			t.Errorf("killall lost the data: %v", err)
		}
		if !strings.Contains(r.Stderr, "node stopped and cleaned up") {
			t.Errorf("killall said:\n%s", r.Stderr)
		}
	})

	t.Run("uninstall --keep-data keeps the data dir", func(t *testing.T) {
		r := srv.Exec(time.Minute, harness.Options{}, "uninstall", "--keep-data")
		if r.Code != 0 {
			t.Fatalf("uninstall: exit %d\n%s", r.Code, r.Stderr)
		}
		if _, err := os.Stat(filepath.Join(srvRoot, "etc/systemd/system/monokube.service")); err == nil {
			t.Error("unit left behind")
		}
		if _, err := os.Stat(filepath.Join(srv.DataDir, "server", "db", "etcd")); err != nil {
			t.Errorf("--keep-data lost the data: %v", err)
		}
	})
}

// install runs monokube install ROLE in the node with its own paths and
// address plus args.
func install(t *testing.T, n *harness.Node, role string, args ...string) {
	t.Helper()
	args = append([]string{"install", role, "--data-dir", n.DataDir, "--run-dir", n.RunDir,
		"--node-ip", n.NS.IP, "--kubelet-arg", "cgroup-root=" + n.CgroupRoot}, args...)
	if r := n.Exec(time.Minute, harness.Options{}, args...); r.Code != 0 {
		t.Fatalf("monokube %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
	}
}

// checkInstalled checks the files install wrote under root.
func checkInstalled(t *testing.T, root, unit, execStart, configHas string) {
	t.Helper()
	u, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", unit))
	if err != nil || !strings.Contains(string(u), execStart) || !strings.Contains(string(u), "Type=notify") {
		t.Errorf("unit %s: %v\n%s", unit, err, u)
	}
	cfg := filepath.Join(root, "etc/monokube/config.yaml")
	c, err := os.ReadFile(cfg)
	if err != nil || !strings.Contains(string(c), configHas) {
		t.Errorf("config: %v\n%s", err, c)
	}
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/local/bin/monokube")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("binary: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(root, "usr/local/bin/kubectl")); err != nil || target != "monokube" {
		t.Errorf("kubectl link: %q %v", target, err)
	}
}
