//go:build e2e

// Package ha_test grows a cluster from one server to three: two more
// `monokube server --server … --token …` join with a server token at once,
// each server in namespaces the test creates on one private network.
package ha_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/server"
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
	token := serverToken(t, s1)
	// An agent joins while the cluster has one server: it must learn the
	// others by itself.
	agent := harness.NewNode(t, network, 10)
	agent.StageImages(nil)
	agent.StartAgent(s1, s1.JoinToken(), "agent-1")

	s1.WaitNodesReady(s1, 2) // the agent's name is claimed
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
	t.Run("each apiserver reaches etcd through its own member and knows the others", func(t *testing.T) {
		for name, n := range servers {
			checkEtcdBalancer(t, name, n, servers)
		}
	})
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
	t.Run("a manifest dropped on one server is applied by it and pruned by no other", func(t *testing.T) {
		checkManifests(t, s1, s2)
	})
	t.Run("one controller-manager, one scheduler and one of monokube's controllers lead", func(*testing.T) { checkLeases(s1) })
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
	t.Run("the Secrets encryption key and the service-account key rotate on every server", func(t *testing.T) {
		checkKeyRotations(t, servers)
	})
	t.Run("the client and etcd CAs rotate on every server, the agent follows, the servers restart in turn", func(t *testing.T) {
		checkCARotation(t, servers, agent)
	})
	t.Run("the agent learns the servers that joined after it", func(t *testing.T) {
		took := agent.WaitFor(time.Minute, "the agent knows three servers", func(context.Context) (bool, error) {
			return len(healthyServers(agent)) == 3, nil
		})
		t.Logf("the agent knew all three servers %s after the check began", took)
	})
	t.Run("each server's node reaches the apiservers through its own balancer, its own apiserver first", func(t *testing.T) {
		for name, n := range servers {
			checkServerNodeBalancer(t, name, n, servers)
		}
	})
	t.Run("kill -9 of the etcd leader's server loses no acknowledged write, the agent carries on, the server rejoins by itself", func(t *testing.T) {
		checkLeaderKill(t, agent, servers)
	})
	t.Run("the agent keeps its API when the server it uses is killed", func(t *testing.T) {
		checkAgentFailover(t, agent, servers)
	})
	// A server is lost for good at this point (the kill above): deleting
	// its node removes its member; then a live server is removed.
	t.Run("deleting a lost server's node removes its etcd member", func(t *testing.T) { checkNodeDeletion(t, servers) })
	var stay, gone string
	t.Run("a removed server exits, keeps its data aside and does not start alone", func(t *testing.T) {
		stay, gone = checkRemoval(t, servers)
	})
	if t.Failed() {
		return // the reset below builds on the removal
	}
	t.Run("after a lost quorum, --cluster-reset brings the API back on the server left", func(t *testing.T) {
		checkClusterReset(t, network, servers[stay], servers[gone], stay, gone)
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
// its etcd member (the two others keep a quorum), also when the killed
// server held the lease of the controllers that remove members: the node
// waits on its finalizer until another server takes the lease.
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
	holder := leaseHolder(t, via, "monokube-controllers")
	start := time.Now()
	via.Kubectl("delete", "node", dead, "--wait=false")
	via.WaitFor(90*time.Second, "the deleted node gone", func(ctx context.Context) (bool, error) {
		_, err := via.Client().CoreV1().Nodes().Get(ctx, dead, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	t.Logf("node %s gone %s after its deletion (the removal's lease was held by %s)", dead, time.Since(start), holder)
	checkMembers(t, via, names...)
}

// checkRemoval: `kubectl delete node` of a live server's node removes its
// etcd member and makes the server exit with code 78 (systemd does not
// restart it), its etcd data moved aside; a start without a join is
// refused with how to join again.
func checkRemoval(t *testing.T, servers map[string]*harness.Node) (stayName, goneName string) {
	live := running(servers)
	var stay, gone *harness.Node
	for name, s := range live {
		if stay == nil {
			stay, stayName = s, name
		} else {
			gone, goneName = s, name
		}
	}
	stay.Kubectl("delete", "node", goneName, "--wait=false")
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
	return stayName, goneName
}

// checkClusterReset: the removed server joins again with a new token and
// a fresh machine joins too: three members. With the two others alive, a
// --cluster-reset of the third is refused; once both are killed for good
// (kill -9: no quorum left), it brings the API back on the third with its
// data. A killed server that starts again learns it was removed, and
// joins the reset cluster anew.
func checkClusterReset(t *testing.T, network *harness.Network, stay, gone *harness.Node, stayName, goneName string) {
	fresh := harness.NewNode(t, network, 6)
	tok := serverToken(t, stay)
	gone.StartServer(append([]string{"--node-name", goneName, "--server", stay.ServerURL(), "--token", tok}, lean()...)...)
	fresh.StartServer(append([]string{"--node-name", "server-4", "--server", stay.ServerURL(), "--token", tok}, lean()...)...)
	gone.WaitReadyz(3 * time.Minute)
	fresh.WaitReadyz(3 * time.Minute)
	checkMembers(t, stay, stayName, goneName, "server-4")
	fresh.Kubectl("create", "configmap", "before-reset", "--from-literal=k=kept")

	if code, _ := stay.Stop(30 * time.Second); code != 0 {
		t.Fatalf("%s: exit code after SIGTERM = %d", stayName, code)
	}
	reset := []string{"server", "--cluster-reset", "--node-name", stayName, "--data-dir", stay.DataDir, "--run-dir", stay.RunDir, "--node-ip", stay.NS.IP, "--disable-agent"}
	r := stay.Exec(2*time.Minute, harness.Options{}, append(reset, lean()...)...)
	for _, want := range []string{"--cluster-reset refused, nothing changed", "still answer on their peer port", goneName, "server-4"} {
		if r.Code == 0 || !strings.Contains(r.Stderr, want) {
			t.Errorf("a reset with two members alive: exit %d, want a refusal saying %q:\n%s", r.Code, want, r.Stderr)
		}
	}
	// With one of three voters down, removing another would leave no quorum.
	r = gone.Exec(time.Minute, harness.Options{}, "etcd", "remove", "--data-dir", gone.DataDir, "server-4")
	if want := "leaves 2 voters of which 1 answer, fewer than the 2 a quorum needs"; r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Errorf("etcd remove server-4 with %s down: exit %d, want a refusal saying %q:\n%s%s", stayName, r.Code, want, r.Stdout, r.Stderr)
	}

	gone.Kill()
	fresh.Kill()
	start := time.Now()
	stay.StartServerNode(append([]string{"--node-name", stayName, "--cluster-reset"}, lean()...)...)
	stay.WaitReadyz(2 * time.Minute)
	t.Logf("--cluster-reset to /readyz: %s", time.Since(start))
	if got := strings.TrimSpace(stay.Kubectl("get", "configmap", "before-reset", "-o", "jsonpath={.data.k}")); got != "kept" {
		t.Errorf("a ConfigMap written before the reset: %q, want kept", got)
	}
	checkMembers(t, stay, stayName)
	stay.WaitFor(time.Minute, "the reset announced in the log", func(context.Context) (bool, error) {
		return strings.Contains(stay.LogTail(200), "cluster reset done"), nil
	})

	again := gone.Exec(2*time.Minute, harness.Options{}, append([]string{"server", "--node-name", goneName, "--data-dir", gone.DataDir,
		"--run-dir", gone.RunDir, "--node-ip", gone.NS.IP, "--disable-agent"}, lean()...)...)
	if again.Code != 78 || !strings.Contains(again.Stderr, "was removed from its cluster") {
		t.Errorf("a dropped server's start after the reset: exit %d, want 78 saying it was removed:\n%s", again.Code, again.Stderr)
	}
	gone.StartServer(append([]string{"--node-name", goneName, "--server", stay.ServerURL(), "--token", serverToken(t, stay)}, lean()...)...)
	gone.WaitReadyz(3 * time.Minute)
	checkMembers(t, stay, stayName, goneName)
	if got := strings.TrimSpace(gone.Kubectl("get", "configmap", "before-reset", "-o", "jsonpath={.data.k}")); got != "kept" {
		t.Errorf("the ConfigMap through the server that joined the reset cluster: %q, want kept", got)
	}
}

// checkManifests: a ConfigMap in a file dropped into s2's manifests
// directory shows through s1; a sync of s1's own directory (a file of its
// own applied) leaves it; it goes once s2's file does.
func checkManifests(t *testing.T, s1, s2 *harness.Node) {
	dropped := filepath.Join(s2.DataDir, "server", "manifests", "dropped-on-2.yaml")
	own := filepath.Join(s1.DataDir, "server", "manifests", "own-of-1.yaml")
	write := func(path, name string) {
		t.Helper()
		data := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: default\ndata:\n  k: v\n"
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(name string) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			_, err := s1.Client().CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
			return err == nil, nil
		}
	}
	write(dropped, "dropped-on-2")
	s1.WaitFor(time.Minute, "the ConfigMap of s2's file", exists("dropped-on-2"))
	write(own, "own-of-1")
	s1.WaitFor(time.Minute, "the ConfigMap of s1's own file", exists("own-of-1"))
	if ok, _ := exists("dropped-on-2")(t.Context()); !ok {
		t.Error("s1's sync deleted the ConfigMap of a file on s2")
	}
	if err := os.Remove(dropped); err != nil {
		t.Fatal(err)
	}
	s1.WaitFor(time.Minute, "the ConfigMap of s2's removed file deleted", func(ctx context.Context) (bool, error) {
		_, err := s1.Client().CoreV1().ConfigMaps("default").Get(ctx, "dropped-on-2", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if ok, _ := exists("own-of-1")(t.Context()); !ok {
		t.Error("s1's own ConfigMap went with s2's file")
	}
}

// serverToken makes a server-join token on n.
func serverToken(t *testing.T, n *harness.Node) string {
	t.Helper()
	r := n.Exec(time.Minute, harness.Options{}, "token", "create", "--role", "server")
	if r.Code != 0 {
		t.Fatalf("token create --role server: exit %d: %s", r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// healthyServers lists the servers n's load balancer counts as healthy.
func healthyServers(n *harness.Node) []string {
	var out []string
	for _, s := range n.Servers().Servers {
		if s.Healthy {
			out = append(out, s.Address)
		}
	}
	return out
}

// checkServerNodeBalancer: the balancer of n's node (which its kubelet's,
// kube-proxy's and flannel's kubeconfigs name) knows every server's
// address and its own apiserver on loopback, all healthy, and carries the
// node's connections to its own apiserver.
func checkServerNodeBalancer(t *testing.T, name string, n *harness.Node, servers map[string]*harness.Node) {
	t.Helper()
	const own = "127.0.0.1:6443"
	want := []string{own}
	for _, s := range servers {
		want = append(want, s.NS.IP+":6443")
	}
	slices.Sort(want)
	var st harness.BalancedServers
	n.WaitFor(time.Minute, name+"'s node balancer knows every server, healthy", func(context.Context) (bool, error) {
		st = n.Servers()
		var healthy []string
		for _, s := range st.Servers {
			if s.Healthy {
				healthy = append(healthy, s.Address)
			}
		}
		slices.Sort(healthy)
		return slices.Equal(healthy, want) && len(st.Servers) == len(want), nil
	})
	if st.Current != own {
		t.Errorf("%s's node reaches the API at %q, want its own apiserver at %s", name, st.Current, own)
	}
}

// checkAgentFailover: with the server the agent's connections go to
// killed (kill -9 of its whole process group), they move to another server
// within 15 s, and a pod made through another server then runs on the
// agent (its kubelet watches through the balancer).
func checkAgentFailover(t *testing.T, agent *harness.Node, servers map[string]*harness.Node) {
	var was string
	agent.WaitFor(time.Minute, "the agent's connections on a server", func(context.Context) (bool, error) {
		was = agent.Servers().Current
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
		cur := agent.Servers().Current
		return cur != "" && cur != was, nil
	})
	t.Logf("agent failover: connections on %s %s after kill -9 of %s", agent.Servers().Current, took, was)
	other.Kubectl("apply", "-f", other.PinnedEcho("on-agent", "agent-1"))
	other.WaitRunning(2*time.Minute, "app=on-agent", 1)
	t.Logf("a pod pinned to the agent ran %s after the kill", time.Since(killed))
}

// checkLeaderKill: kill -9 of the etcd leader's server while another
// server takes a write every 100 ms (bounded: 300 writes, 30 s): the
// writes fail for no longer than 10 s and every acknowledged one reads
// back; the agent's node stays Ready and its pod keeps running, not
// restarted, and its connections leave the killed server if they were
// there; the killed server, started again from its data dir, is a
// healthy voter again.
func checkLeaderKill(t *testing.T, agent *harness.Node, servers map[string]*harness.Node) {
	s1 := servers["server-1"]
	s1.Kubectl("apply", "-f", s1.PinnedEcho("kept", "agent-1"))
	s1.WaitRunning(2*time.Minute, "app=kept", 1)
	before := agentPod(t, s1, "app=kept")
	leaderName := s1.EtcdLeader()
	leader := servers[leaderName]
	var via *harness.Node
	for name, n := range servers {
		if name != leaderName {
			via = n
		}
	}
	agentWas := agent.Servers().Current
	var killed time.Time
	w := harness.WriteLoop(via.Client(), "leader-kill-", 300, 30*time.Second, func(i int) {
		if i == 20 {
			leader.Kill()
			killed = time.Now()
		}
	})
	t.Logf("kill -9 of %s, the etcd leader: %d writes acknowledged, longest failing run %s, slowest write %s",
		leaderName, len(w.Acked), w.Gap, w.Slowest)
	if !w.FailingSince.IsZero() || w.Gap > 10*time.Second {
		t.Errorf("writes failed for %s (still failing since %v); want at most 10 s", w.Gap, w.FailingSince)
	}
	if lost := w.Lost(t, via.Client()); lost > 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
	node, err := via.Client().CoreV1().Nodes().Get(t.Context(), "agent-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && (c.Status != corev1.ConditionTrue || c.LastTransitionTime.After(killed)) {
			t.Errorf("the agent's node: Ready %s since %s; want Ready throughout (the kill at %s)", c.Status, c.LastTransitionTime, killed)
		}
	}
	if after := agentPod(t, via, "app=kept"); after.UID != before.UID || after.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the agent's pod after the kill: %s restarted %d times; want %s running on, not restarted",
			after.UID, after.Status.ContainerStatuses[0].RestartCount, before.UID)
	}
	if agentWas == leader.NS.IP+":6443" {
		if cur := agent.Servers().Current; cur == "" || cur == agentWas {
			t.Errorf("the agent's connections are on %q after the write loop; want them off the killed %s", cur, agentWas)
		}
	}
	leader.StartServerNode(append([]string{"--node-name", leaderName}, lean()...)...)
	leader.WaitReadyz(2 * time.Minute)
	checkMembers(t, via, "server-1", "server-2", "server-3")
}

// agentPod is the one running pod of selector, with its container status.
func agentPod(t *testing.T, n *harness.Node, selector string) corev1.Pod {
	t.Helper()
	pods, err := n.Client().CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning || len(pods.Items[0].Status.ContainerStatuses) != 1 {
		t.Fatalf("pods of %s: want one running pod with its container, got %+v", selector, pods.Items)
	}
	return pods.Items[0]
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
// CIDR other than the cluster's, with a member's or an agent's name or a
// member's advertise address, or with a peer port the members cannot
// reach fails with what to do and
// takes no identity.
func checkRefusals(t *testing.T, s1 *harness.Node, network *harness.Network, serverToken string) {
	for i, tc := range []struct {
		name      string
		args      []string
		wants     []string
		blockPeer bool // the joiner's namespace drops connections to its :2380
	}{
		{"agent token", []string{"--token", s1.JoinToken(), "--node-name", "refused"}, []string{"is an agent token", "token create --role server"}, false},
		{"other cluster CIDR and addons", []string{"--token", serverToken, "--node-name", "refused", "--cluster-cidr", "10.52.0.0/16", "--disable", "coredns"},
			[]string{"--cluster-cidr: this server 10.52.0.0/16, the cluster 10.42.0.0/16",
				"--disable: this server coredns,local-storage,metrics-server, the cluster local-storage,metrics-server"}, false},
		{"a member's name", []string{"--token", serverToken, "--node-name", "server-1"},
			[]string{"etcd member server-1", "already has this server's name: give this server another --node-name"}, false},
		{"an agent's name", []string{"--token", serverToken, "--node-name", "agent-1"},
			[]string{"node name agent-1 is held by an agent of the cluster"}, false},
		{"a member's advertise address", []string{"--token", serverToken, "--node-name", "refused", "--advertise-address", s1.NS.IP},
			[]string{"address " + s1.NS.IP + " is advertised by a running apiserver of the cluster"}, false},
		{"a peer port the members cannot reach", []string{"--token", serverToken, "--node-name", "server-blocked"},
			[]string{"no etcd member connected to this server's peer port", "the other servers cannot reach TCP 2380 on this machine"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := harness.NewNode(t, network, 20+i)
			if tc.blockPeer { // the rule goes with the namespace
				if out, err := exec.Command("ip", "netns", "exec", n.NS.Name, "iptables", "-I", "INPUT", "-p", "tcp", "--dport", "2380", "-j", "DROP").CombinedOutput(); err != nil {
					t.Fatalf("block the peer port: %v\n%s", err, out)
				}
			}
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
			if tc.blockPeer { // the learner it added is gone again
				checkMembers(t, s1, "server-1")
			}
		})
	}
}

// checkEtcdBalancer: n's etcd balancer (the apiserver's --etcd-servers)
// lists its own member on loopback and every other server's client URL, all
// healthy, and carries the apiserver's connections to its own member.
func checkEtcdBalancer(t *testing.T, name string, n *harness.Node, servers map[string]*harness.Node) {
	t.Helper()
	want := []string{etcd.LocalAddr()}
	for other, s := range servers {
		if other != name {
			want = append(want, s.NS.IP+":2379")
		}
	}
	slices.Sort(want)
	var st apilb.State
	n.WaitFor(time.Minute, name+"'s etcd balancer knows every member", func(context.Context) (bool, error) {
		var err error
		st, err = apilb.LoadState(server.EtcdBalancerFile(datadir.Layout{Data: n.DataDir}))
		if err != nil {
			return false, nil
		}
		got := st.Addresses()
		slices.Sort(got)
		healthy := !slices.ContainsFunc(st.Servers, func(s apilb.ServerState) bool { return !s.Healthy })
		return slices.Equal(got, want) && healthy, nil
	})
	if st.Current != etcd.LocalAddr() {
		t.Errorf("%s's apiserver reaches etcd at %q, want its own member at %s", name, st.Current, etcd.LocalAddr())
	}
}

// checkMembers: etcd, asked through n, has exactly the named members, all
// healthy voters.
func checkMembers(t *testing.T, n *harness.Node, names ...string) {
	t.Helper()
	n.WaitEtcdVoters(t, time.Minute, names...)
}

// checkLeases: each of the controller-manager's, the scheduler's and
// monokube's own controllers' leases is held by a server.
func checkLeases(n *harness.Node) {
	c := n.Client()
	for _, name := range []string{"kube-controller-manager", "kube-scheduler", "monokube-controllers"} {
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

// checkKeyRotations rotates the Secrets encryption key from one server and
// the service-account key from another: every server ends with the same
// keys, a Secret written before reads through every server and etcd holds
// it under the new key, and a token from before and one from after
// authenticate on every server.
func checkKeyRotations(t *testing.T, servers map[string]*harness.Node) {
	s1, s2, s3 := servers["server-1"], servers["server-2"], servers["server-3"]
	s1.Kubectl("create", "secret", "generic", "before-rotation", "--from-literal=k=v")
	before := s1.Kubectl("create", "token", "default", "--duration", "2h")
	keyBefore := readFile(t, filepath.Join(s1.DataDir, "server", "tls", "service.key"))

	for _, cmd := range [][]string{{"secrets-encrypt", "rotate-keys"}, {"service-account-key", "rotate", "--keep-old", "1h"}} {
		start := time.Now()
		n := s2
		if cmd[0] == "service-account-key" {
			n = s3
		}
		r := n.Exec(5*time.Minute, harness.Options{}, append(cmd, "--data-dir", n.DataDir)...)
		if r.Code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", cmd, r.Code, r.Stdout, r.Stderr)
		}
		t.Logf("%v on three servers: %s\n%s", cmd, time.Since(start).Round(time.Millisecond), r.Stdout)
	}
	same := func(rel string) string {
		first := readFile(t, filepath.Join(s1.DataDir, rel))
		for name, n := range servers {
			if readFile(t, filepath.Join(n.DataDir, rel)) != first {
				t.Errorf("%s differs on %s", rel, name)
			}
		}
		return first
	}
	encryption := same(filepath.Join("server", "cred", "encryption-config.json"))
	if same(filepath.Join("server", "tls", "service.key")) == keyBefore {
		t.Error("the servers sign with the key from before the rotation")
	}
	keyName := regexp.MustCompile(`"name": "([^"]+)"`).FindAllStringSubmatch(encryption, -1)
	if len(keyName) != 1 || keyName[0][1] == "monokube-1" {
		t.Fatalf("the servers' encryption config holds keys %v, want one new key", keyName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := s1.LocalEtcd(t).Get(ctx, "/registry/secrets/default/before-rotation")
	if err != nil || len(kv.Kvs) != 1 || !strings.HasPrefix(string(kv.Kvs[0].Value), "k8s:enc:secretbox:v1:"+keyName[0][1]+":") {
		t.Errorf("etcd holds the Secret as %v (%v), want ciphertext of %s", kv, err, keyName[0][1])
	}
	after := s1.Kubectl("create", "token", "default", "--duration", "2h")
	for name, n := range servers {
		if got := strings.TrimSpace(n.Kubectl("get", "secret", "before-rotation", "-o", "jsonpath={.data.k}")); got != "dg==" {
			t.Errorf("the Secret through %s: %q, want v in base64", name, got)
		}
		for what, tok := range map[string]string{"from before": before, "from after": after} {
			if u, err := n.WhoAmI(tok); err != nil || u != "system:serviceaccount:default:default" {
				t.Errorf("a token %s on %s: %q, %v", what, name, u, err)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
