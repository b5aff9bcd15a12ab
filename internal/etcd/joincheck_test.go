package etcd

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/testutil"
)

func TestCheckJoin(t *testing.T) {
	const self = "https://10.0.0.4:2380"
	ms := []Member{
		{ID: 1, Name: "s1", PeerURLs: []string{"https://10.0.0.2:2380"}},
		{ID: 2, Name: "s2", PeerURLs: []string{"https://10.0.0.3:2380"}},
	}
	if err := CheckJoin(ms, "s3", self); err != nil {
		t.Errorf("a new name at a new address: %v", err)
	}
	if err := CheckJoin(ms, "s2", self); err == nil || !strings.Contains(err.Error(), "already has this server's name: give this server another --node-name") {
		t.Errorf("a name in use: %v; want a refusal saying to rename", err)
	}
	resumed := append(ms, Member{ID: 3, PeerURLs: []string{self}, Learner: true})
	if err := CheckJoin(resumed, "s3", self); err != nil {
		t.Errorf("this machine's learner that never started: %v; want it resumed", err)
	}
	old := append(ms, Member{ID: 3, Name: "s3", PeerURLs: []string{self}})
	if err := CheckJoin(old, "s3", self); err == nil || !strings.Contains(err.Error(), "already serves at "+self) {
		t.Errorf("this machine's old member: %v; want a refusal saying to remove it", err)
	}
}

func TestReachPeers(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "https://" + down.Addr().String()
	down.Close() // nothing listens there now
	upURL := "https://" + up.Addr().String()
	const self = "https://127.0.0.1:1"
	ctx := context.Background()

	if warn, refuse := ReachPeers(ctx, []Member{{Name: "a", PeerURLs: []string{upURL}}}, self); warn != nil || refuse != nil {
		t.Errorf("one reachable voter: warn %v, refuse %v", warn, refuse)
	}
	three := []Member{{Name: "a", PeerURLs: []string{upURL}}, {Name: "b", PeerURLs: []string{upURL}}, {Name: "c", PeerURLs: []string{downURL}}}
	warn, refuse := ReachPeers(ctx, three, self)
	if refuse != nil || warn == nil || !strings.Contains(warn.Error(), "etcd member c at") {
		t.Errorf("two of three voters reachable: warn %v, refuse %v; want a warning naming c", warn, refuse)
	}
	three[1].PeerURLs = []string{downURL}
	_, refuse = ReachPeers(ctx, three, self)
	if refuse == nil || !strings.Contains(refuse.Error(), "reaches 1 of 3 voters") || !strings.Contains(refuse.Error(), "TCP 2380") {
		t.Errorf("one of three voters reachable: %v; want a refusal with the numbers and the port", refuse)
	}
	pending := []Member{{Name: "a", PeerURLs: []string{upURL}}, {PeerURLs: []string{downURL}, Learner: true}}
	if warn, refuse := ReachPeers(ctx, pending, self); warn != nil || refuse != nil {
		t.Errorf("a learner that never started is not dialled: warn %v, refuse %v", warn, refuse)
	}
}

// A joiner's PeerProbe sees the members connect to its peer port once its
// learner is added; listening where no member was told to connect, it
// refuses, and RemoveLearner takes the learner out again.
func TestPeerProbe(t *testing.T) {
	tc, ctx := newTestCluster(t, bound)
	tc.pending("b")
	cfg := tc.config("b")
	probe, err := ListenPeers(cfg.NodeIP, cfg.PeerPort)
	if err != nil {
		t.Fatal(err)
	}
	j := tc.add(ctx, "b")
	ms, err := tc.cluster.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if warn, refuse := probe.Await(ctx, ms, tc.peerURL("b"), 10*time.Second); warn != nil || refuse != nil {
		t.Errorf("the member dials the learner's peer port: warn %v, refuse %v", warn, refuse)
	}
	if err := probe.Close(); err != nil { // Await closed it: a second Close is harmless
		t.Errorf("Close after Await: %v", err)
	}
	if err := tc.cluster.RemoveLearner(ctx, j.ID); err != nil {
		t.Fatal(err)
	}

	tc.pending("c")
	elsewhere, err := ListenPeers(cfg.NodeIP, testutil.FreePort(t)) // not c's peer port
	if err != nil {
		t.Fatal(err)
	}
	jc := tc.add(ctx, "c")
	if ms, err = tc.cluster.Members(ctx); err != nil {
		t.Fatal(err)
	}
	_, refuse := elsewhere.Await(ctx, ms, tc.peerURL("c"), 2*time.Second)
	if refuse == nil || !strings.Contains(refuse.Error(), "no etcd member connected") || !strings.Contains(refuse.Error(), "cannot reach TCP 2380") {
		t.Errorf("no member connects: %v; want a refusal naming the port", refuse)
	}
	if err := tc.cluster.RemoveLearner(ctx, jc.ID); err != nil {
		t.Fatal(err)
	}
	if err := tc.cluster.RemoveLearner(ctx, jc.ID); err != nil {
		t.Errorf("removing a learner already gone: %v", err)
	}
	if got := tc.voters(ctx); !slices.Equal(got, []string{"a"}) {
		t.Errorf("members after both learners were removed: %v, want a", got)
	}
}
