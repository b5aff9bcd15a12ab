//go:build e2e

package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/tests/harness"
)

// writes is how many ConfigMap writes the latency figures time.
const writes = 200

// BenchmarkHA grows a cluster from one server (with an agent) to three
// and measures, in one run: each joiner's start to a voting member with a
// ready apiserver, the write latency (p50, p99) through a server with one
// and with three etcd members, each server's idle RSS, then a bounded write
// loop (every 100 ms, at most 60 s) through one server while the etcd
// leader's server is killed with kill -9: the longest run of failed writes
// (API unavailability), whether every acknowledged write reads back, and
// the agent's failover (its load balancer on another server).
func BenchmarkHA(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	lean := []string{"--disable", "coredns,local-storage,metrics-server"}
	for range b.N {
		network := harness.NewNetwork(b)
		s1 := harness.NewNode(b, network, 2)
		s1.StartServer(append([]string{"--node-name", "server-1"}, lean...)...)
		s1.WaitReadyz(2 * time.Minute)
		agent := harness.NewNode(b, network, 10)
		agent.StageImages(nil)
		agent.StartAgent(s1, s1.JoinToken(), "agent-1")
		agent.WaitNodesReady(s1, 1)
		one50, one99 := writeLatency(b, fastClient(b, s1), "one-member")
		r := s1.Exec(time.Minute, harness.Options{}, "token", "create", "--role", "server")
		if r.Code != 0 {
			b.Fatalf("token create: %s", r.Stderr)
		}
		token := strings.TrimSpace(r.Stdout)
		servers := []*harness.Node{s1}
		var joins []time.Duration
		for i, name := range []string{"server-2", "server-3"} {
			n := harness.NewNode(b, network, 3+i)
			start := time.Now()
			n.StartServer(append([]string{"--node-name", name, "--server", s1.ServerURL(), "--token", token}, lean...)...)
			n.WaitReadyz(3 * time.Minute)
			joins = append(joins, time.Since(start))
			servers = append(servers, n)
		}
		three50, three99 := writeLatency(b, fastClient(b, s1), "three-members")
		time.Sleep(30 * time.Second) // the idle figure is of idle servers
		var rss []float64
		for _, n := range servers {
			rss = append(rss, rssMiB(b, n.PID()))
		}
		gap, slowest, lost, failover := killLeader(b, servers, agent)

		report(b, "join-to-voter-readyz-s", slices.Max(joins).Seconds())
		report(b, "write-p50-1-member-ms", one50)
		report(b, "write-p50-3-members-ms", three50)
		report(b, "write-p99-1-member-ms", one99)
		report(b, "write-p99-3-members-ms", three99)
		report(b, "server-idle-rss-max-MiB", slices.Max(rss))
		report(b, "api-gap-leader-kill-s", gap.Seconds())
		report(b, "slowest-write-leader-kill-s", slowest.Seconds())
		report(b, "lost-acked-writes", float64(lost))
		report(b, "agent-failover-s", failover.Seconds())
	}
}

// fastClient is n's client without client-go's default limit of 5
// requests/s, which would time the limiter (200 ms) instead of the writes.
func fastClient(b *testing.B, n *harness.Node) kubernetes.Interface {
	cfg := n.RESTConfig()
	cfg.QPS, cfg.Burst = 1000, 1000
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// writeLatency is the median and the 99th percentile time of writes
// sequential ConfigMap creates.
func writeLatency(b *testing.B, c kubernetes.Interface, prefix string) (p50, p99 float64) {
	took := make([]float64, 0, writes)
	for i := range writes {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i)}}
		start := time.Now()
		if _, err := c.CoreV1().ConfigMaps("default").Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			b.Fatalf("write %d: %v", i, err)
		}
		took = append(took, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(took)
	return took[len(took)/2], took[len(took)*99/100]
}

// killLeader kills the etcd leader's server while another takes one write
// every 100 ms (bounded: 600 writes, 60 s, 2 s each), and returns the
// longest run of failed writes, the slowest write that succeeded (a write
// waits out the election rather than fail), how many acknowledged writes
// are missing afterwards, and how long the agent's load balancer took to
// another server.
func killLeader(b *testing.B, servers []*harness.Node, agent *harness.Node) (gap, slowest time.Duration, lost int, failover time.Duration) {
	leaderName := servers[0].EtcdLeader()
	var leader, via *harness.Node
	for i, n := range servers {
		if fmt.Sprintf("server-%d", i+1) == leaderName {
			leader = n
		} else {
			via = n
		}
	}
	c := via.Client()
	before := agent.Servers().Current
	var killedAt time.Time
	w := harness.WriteLoop(c, "loop-", 600, 60*time.Second, func(i int) {
		if i == 50 {
			leader.Kill()
			killedAt = time.Now()
		}
		if failover == 0 && !killedAt.IsZero() {
			if cur := agent.Servers().Current; cur != "" && cur != before {
				failover = time.Since(killedAt)
			}
		}
	})
	if !w.FailingSince.IsZero() {
		b.Errorf("writes still fail at the end of the loop (since %s)", w.FailingSince)
	}
	gap, slowest, lost = w.Gap, w.Slowest, w.Lost(b, c)
	switch {
	case before != leader.NS.IP+":6443":
		fmt.Printf("  the agent's connections went to %s, not to the killed leader: no failover to time\n", before)
		failover = -1
	case failover == 0:
		b.Errorf("the agent's connections did not leave the killed server %s", before)
	}
	return gap, slowest, lost, failover
}
