//go:build e2e

// Package ha_test grows a cluster from one server to three: two more
// `monokube server --server … --token …` join with a server token at once,
// each server in namespaces the test creates on one private network.
package ha_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/monokube/monokube/tests/harness"
)

// lean is what the servers leave out: no addon this test needs.
func lean() []string { return []string{"--disable", "local-storage,metrics-server"} }

func TestServerJoins(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	network := harness.NewNetwork(t)
	s1 := harness.NewNode(t, network, 2)
	s1.StageImages(nil)
	s1.StartServerNode(append([]string{"--node-name", "server-1"}, lean()...)...)
	s1.WaitReadyz(2 * time.Minute)
	s1.WaitNodeReady(3 * time.Minute)
	r := s1.Exec(time.Minute, harness.Options{}, "token", "create", "--role", "server")
	if r.Code != 0 {
		t.Fatalf("token create --role server: exit %d: %s", r.Code, r.Stderr)
	}
	token := strings.TrimSpace(r.Stdout)
	// An agent joins while the cluster has one server: it must learn the
	// others by itself.
	agent := harness.NewNode(t, network, 10)
	agent.StageImages(nil)
	agent.StartAgent(s1, s1.JoinToken(), "agent-1")

	t.Run("an agent token and other settings are refused before anything is written", func(t *testing.T) {
		checkRefusals(t, s1, network, token)
	})

	// Two servers join at once: etcd takes one learner at a time, so one
	// of them waits for the other's promotion.
	servers := map[string]*harness.Node{"server-1": s1}
	start := time.Now()
	for i, name := range []string{"server-2", "server-3"} {
		n := harness.NewNode(t, network, 3+i)
		n.StageImages(nil)
		n.StartServerNode(append([]string{"--node-name", name, "--server", s1.ServerURL(), "--token", token}, lean()...)...)
		servers[name] = n
	}
	for _, name := range []string{"server-2", "server-3"} {
		servers[name].WaitReadyz(3 * time.Minute)
		t.Logf("%s to /readyz: %s (both started together)", name, time.Since(start))
	}
	s2 := servers["server-2"]
	s2.WaitNodesReady(s2, 4)
	t.Logf("the joining servers to all four nodes Ready: %s", time.Since(start))

	t.Run("the three servers are voters of one etcd", func(t *testing.T) { checkMembers(t, s2, "server-1", "server-2", "server-3") })
	t.Run("a joiner's apiserver starts once its member votes", func(t *testing.T) {
		for _, name := range []string{"server-2", "server-3"} {
			checkJoinLog(t, servers[name])
		}
	})
	t.Run("an object written through one server reads through the others", func(t *testing.T) {
		s1.Kubectl("create", "configmap", "written-on-1", "--from-literal=k=v")
		for _, name := range []string{"server-2", "server-3"} {
			if got := strings.TrimSpace(servers[name].Kubectl("get", "configmap", "written-on-1", "-o", "jsonpath={.data.k}")); got != "v" {
				t.Errorf("through %s: %q, want v", name, got)
			}
		}
	})
	t.Run("one controller-manager and one scheduler lead", func(*testing.T) { checkLeases(s1) })
	t.Run("the servers' nodes are labelled control-plane", func(t *testing.T) {
		s1.WaitFor(time.Minute, "three control-plane nodes", func(ctx context.Context) (bool, error) {
			nodes, err := s1.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "node-role.kubernetes.io/control-plane=true"})
			return err == nil && len(nodes.Items) == 3, err
		})
	})
	t.Run("the controller-manager fails over to another server", func(t *testing.T) { checkFailover(t, servers) })
	t.Run("a joined server restarts from its data dir alone", func(t *testing.T) {
		if code, _ := s2.Stop(30 * time.Second); code != 0 {
			t.Fatalf("exit code after SIGTERM = %d\n%s", code, s2.LogTail(30))
		}
		s2.StartServerNode(append([]string{"--node-name", "server-2"}, lean()...)...)
		s2.WaitReadyz(2 * time.Minute)
		checkMembers(t, s2, "server-1", "server-2", "server-3")
	})
	t.Run("the agent learns the servers that joined after it", func(t *testing.T) {
		took := agent.WaitFor(time.Minute, "the agent knows three servers", func(context.Context) (bool, error) {
			return len(healthyServers(agent)) == 3, nil
		})
		t.Logf("the agent knew all three servers %s after the check began", took)
	})
	t.Run("the agent keeps its API when the server it uses is killed", func(t *testing.T) {
		checkAgentFailover(t, agent, servers)
	})
	// A server is lost for good at this point (the kill above): deleting
	// its node removes its member; then a live server is removed.
	t.Run("deleting a lost server's node removes its etcd member", func(t *testing.T) { checkNodeDeletion(t, servers) })
	t.Run("a removed server exits, keeps its data aside and does not start alone", func(t *testing.T) {
		checkRemoval(t, servers)
	})
}

// running lists the servers whose process runs, by name.
func running(servers map[string]*harness.Node) map[string]*harness.Node {
	out := map[string]*harness.Node{}
	for name, s := range servers {
		select {
		case <-s.Exited():
		default:
			out[name] = s
		}
	}
	return out
}

// checkNodeDeletion: `kubectl delete node` of the killed server removes
// its etcd member (the two others keep a quorum).
func checkNodeDeletion(t *testing.T, servers map[string]*harness.Node) {
	live := running(servers)
	var dead string
	for name := range servers {
		if live[name] == nil {
			dead = name
		}
	}
	if len(live) != 2 || dead == "" {
		t.Fatalf("%d servers run; want two, the third killed", len(live))
	}
	var names []string
	var via *harness.Node
	for name, s := range live {
		names, via = append(names, name), s
	}
	via.Kubectl("delete", "node", dead)
	checkMembers(t, via, names...)
}

// checkRemoval: `monokube etcd remove` of a live server makes it exit
// with code 78 (systemd does not restart it), its etcd data moved aside,
// and a start without a join is refused with how to join again.
func checkRemoval(t *testing.T, servers map[string]*harness.Node) {
	live := running(servers)
	var stay, gone *harness.Node
	var stayName, goneName string
	for name, s := range live {
		if stay == nil {
			stay, stayName = s, name
		} else {
			gone, goneName = s, name
		}
	}
	r := stay.Exec(time.Minute, harness.Options{}, "etcd", "remove", "--data-dir", stay.DataDir, goneName)
	if r.Code != 0 || !strings.Contains(r.Stdout, "removed etcd member "+goneName) {
		t.Fatalf("etcd remove %s: exit %d\n%s%s", goneName, r.Code, r.Stdout, r.Stderr)
	}
	select {
	case <-gone.Exited():
	case <-time.After(time.Minute):
		t.Fatalf("%s still runs a minute after its removal\n%s", goneName, gone.LogTail(30))
	}
	if code, _ := gone.Stop(5 * time.Second); code != 78 {
		t.Errorf("%s exited with %d after its removal, want 78\n%s", goneName, code, gone.LogTail(30))
	}
	aside, _ := filepath.Glob(filepath.Join(gone.DataDir, "server", "db", "etcd-removed-*", "member"))
	if _, err := os.Stat(filepath.Join(gone.DataDir, "server", "db", "etcd")); err == nil || len(aside) != 1 {
		t.Errorf("after the removal: etcd data still in place, or not moved aside (%v)", aside)
	}
	again := gone.Exec(time.Minute, harness.Options{}, "server", "--node-name", goneName, "--data-dir", gone.DataDir,
		"--run-dir", gone.RunDir, "--node-ip", gone.NS.IP, "--disable-agent")
	if again.Code != 78 || !strings.Contains(again.Stderr, "was removed from its cluster") || !strings.Contains(again.Stderr, "token create --role server") {
		t.Errorf("a start of the removed server: exit %d, want 78 with how to join again:\n%s", again.Code, again.Stderr)
	}
	checkMembers(t, stay, stayName)
}

// serversState is what `monokube servers -o json` prints.
type serversState struct {
	Current string `json:"current"`
	Servers []struct {
		Address string `json:"address"`
		Healthy bool   `json:"healthy"`
	} `json:"servers"`
}

func agentServers(n *harness.Node) serversState {
	var st serversState
	r := n.Exec(time.Minute, harness.Options{}, "servers", "--data-dir", n.DataDir, "-o", "json")
	_ = json.Unmarshal([]byte(r.Stdout), &st)
	return st
}

// healthyServers lists the servers n's load balancer counts as healthy.
func healthyServers(n *harness.Node) []string {
	var out []string
	for _, s := range agentServers(n).Servers {
		if s.Healthy {
			out = append(out, s.Address)
		}
	}
	return out
}

// checkAgentFailover: with the server the agent's connections go to
// killed (kill -9 of its whole process group), they move to another server
// within 15 s, and a pod made through another server then runs on the
// agent (its kubelet watches through the balancer).
func checkAgentFailover(t *testing.T, agent *harness.Node, servers map[string]*harness.Node) {
	var was string
	agent.WaitFor(time.Minute, "the agent's connections on a server", func(context.Context) (bool, error) {
		was = agentServers(agent).Current
		return was != "", nil
	})
	var victim, other *harness.Node
	for _, s := range servers {
		if s.NS.IP+":6443" == was {
			victim = s
		} else {
			other = s
		}
	}
	if victim == nil {
		t.Fatalf("the agent's connections go to %s, not a server's address", was)
	}
	killed := time.Now()
	victim.Kill()
	took := agent.WaitFor(15*time.Second, "the agent's connections on another server", func(context.Context) (bool, error) {
		cur := agentServers(agent).Current
		return cur != "" && cur != was, nil
	})
	t.Logf("agent failover: connections on %s %s after kill -9 of %s", agentServers(agent).Current, took, was)
	other.Kubectl("apply", "-f", other.PinnedEcho("on-agent", "agent-1"))
	other.WaitRunning(2*time.Minute, "app=on-agent", 1)
	t.Logf("a pod pinned to the agent ran %s after the kill", time.Since(killed))
}

// checkJoinLog: n's log shows its learner added, then promoted, then its
// apiserver started, and the join record is gone.
func checkJoinLog(t *testing.T, n *harness.Node) {
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(data)
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "etcd-join") || strings.Contains(line, "learner") {
			t.Logf("%s: %s", filepath.Base(n.Dir), line)
		}
	}
	added, voter, apiserver := strings.Index(log, "added this server to etcd as a learner"),
		strings.Index(log, "this server's etcd member is a voter"), strings.Index(log, "waiting for kube-apiserver")
	if added < 0 || voter < added || apiserver < voter {
		t.Errorf("log order: learner added at %d, voter at %d, apiserver started at %d; want them in that order\n%s", added, voter, apiserver, n.LogTail(40))
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "server", "etcd-join.json")); err == nil {
		t.Error("the join record stays after the promotion")
	}
}

// checkFailover: with the server that leads the controller-manager
// stopped, another server takes the lease and a Deployment made then gets
// its pods; the stopped server starts again from its data dir.
func checkFailover(t *testing.T, servers map[string]*harness.Node) {
	leader := leaseHolder(t, servers["server-1"], "kube-controller-manager")
	n := servers[leader]
	if n == nil {
		t.Fatalf("the controller-manager's lease is held by %q, not a server", leader)
	}
	if code, _ := n.Stop(30 * time.Second); code != 0 {
		t.Fatalf("%s: exit code after SIGTERM = %d", leader, code)
	}
	var other *harness.Node
	for name, s := range servers {
		if name != leader {
			other = s
		}
	}
	start := time.Now()
	other.WaitFor(time.Minute, "another server leads the controller-manager", func(context.Context) (bool, error) {
		h := leaseHolder(t, other, "kube-controller-manager")
		return h != "" && h != leader, nil
	})
	t.Logf("controller-manager lease taken over %s after %s stopped", time.Since(start), leader)
	other.Kubectl("apply", "-f", other.EchoDeployment("after-failover", 2))
	other.WaitRunning(2*time.Minute, "app=after-failover", 2)
	n.StartServerNode(append([]string{"--node-name", leader}, lean()...)...)
	n.WaitReadyz(2 * time.Minute)
}

func leaseHolder(t *testing.T, n *harness.Node, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err := n.Client().CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// checkRefusals: a server joining with an agent token, with a cluster
// CIDR other than the cluster's or with a member's name fails with what to
// do and takes no identity.
func checkRefusals(t *testing.T, s1 *harness.Node, network *harness.Network, serverToken string) {
	for i, tc := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"agent token", []string{"--token", s1.JoinToken(), "--node-name", "refused"}, []string{"is an agent token", "token create --role server"}},
		{"other cluster CIDR and addons", []string{"--token", serverToken, "--node-name", "refused", "--cluster-cidr", "10.52.0.0/16", "--disable", "coredns"},
			[]string{"--cluster-cidr: this server 10.52.0.0/16, the cluster 10.42.0.0/16",
				"--disable: this server coredns,local-storage,metrics-server, the cluster local-storage,metrics-server"}},
		{"a member's name", []string{"--token", serverToken, "--node-name", "server-1"},
			[]string{"etcd member server-1", "already has this server's name: give this server another --node-name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := harness.NewNode(t, network, 20+i)
			args := append([]string{"server", "--server", s1.ServerURL(), "--data-dir", n.DataDir,
				"--run-dir", n.RunDir, "--node-ip", n.NS.IP, "--disable-agent"}, append(tc.args, lean()...)...)
			r := n.Exec(2*time.Minute, harness.Options{}, args...)
			for _, want := range tc.wants {
				if r.Code == 0 || !strings.Contains(r.Stderr, want) {
					t.Errorf("exit %d, want a failure saying %q:\n%s", r.Code, want, r.Stderr)
				}
			}
			for _, f := range []string{"server/tls/server-ca.key", "server/cred/encryption-config.json", "server/db/etcd/member"} {
				if _, err := os.Stat(filepath.Join(n.DataDir, f)); err == nil {
					t.Errorf("a refused join wrote %s", f)
				}
			}
		})
	}
}

// checkMembers: etcd, asked through n, has exactly the named members, all
// healthy voters.
func checkMembers(t *testing.T, n *harness.Node, names ...string) {
	t.Helper()
	var ms []struct {
		Name    string `json:"name"`
		Learner bool   `json:"learner"`
		Healthy bool   `json:"healthy"`
	}
	n.WaitFor(time.Minute, "etcd members healthy voters", func(context.Context) (bool, error) {
		r := n.Exec(time.Minute, harness.Options{}, "etcd", "members", "-o", "json")
		ms = nil
		if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil || len(ms) != len(names) {
			return false, err
		}
		for _, m := range ms {
			if m.Learner || !m.Healthy {
				return false, nil
			}
		}
		return true, nil
	})
	for _, want := range names {
		found := false
		for _, m := range ms {
			found = found || m.Name == want
		}
		if !found {
			t.Errorf("etcd members %+v: no %s", ms, want)
		}
	}
}

// checkLeases: each of the controller-manager's and the scheduler's
// leases is held by a server.
func checkLeases(n *harness.Node) {
	c := n.Client()
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		n.WaitFor(time.Minute, name+" lease held", func(ctx context.Context) (bool, error) {
			l, err := c.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			h := l.Spec.HolderIdentity
			return h != nil && strings.HasPrefix(*h, "server-"), nil
		})
	}
}
