package etcd

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/apilb"
)

func TestClientAddrsSkipSelfAndLearners(t *testing.T) {
	self := netip.MustParseAddr("10.0.0.1")
	ms := []Member{
		{Name: "s1", ClientURLs: []string{"https://10.0.0.1:2379"}},
		{Name: "s2", ClientURLs: []string{"https://10.0.0.2:2379"}},
		{Name: "s3", ClientURLs: []string{"https://[fd00::3]:2379"}},
		{Name: "s4", ClientURLs: []string{"https://10.0.0.4:2379"}, Learner: true},
		{Name: "", PeerURLs: []string{"https://10.0.0.5:2380"}}, // not started yet
		{Name: "bad", ClientURLs: []string{"::"}},
	}
	got := clientAddrs(ms, self)
	if want := []string{"10.0.0.2:2379", "[fd00::3]:2379"}; !slices.Equal(got, want) {
		t.Errorf("clientAddrs = %v, want %v", got, want)
	}
	if got, want := BalancedURL(), "https://127.0.0.1:2399"; got != want {
		t.Errorf("BalancedURL() = %q, want %q", got, want)
	}
}

// The apiserver's view of the balancer on a real three-member cluster: an
// etcd client through it writes to the preferred member, and once that
// member stops, writes go on through another one with nothing lost.
func TestBalancedClientSurvivesLocalMemberLoss(t *testing.T) {
	tc, ctx := newTestCluster(t, 2*bound)
	tc.three(ctx)
	tlsCfg, err := tc.tls.Config()
	if err != nil {
		t.Fatal(err)
	}
	probe := apilb.HTTPSProbe(tlsCfg, "/livez")
	local := strings.TrimPrefix(tc.clientURL("a"), "https://")
	others := []string{strings.TrimPrefix(tc.clientURL("b"), "https://"), strings.TrimPrefix(tc.clientURL("c"), "https://")}
	lb := apilb.New(apilb.Config{What: "etcd member", Listen: "127.0.0.1:0", Joined: local, Prefer: true, Probe: probe,
		Learn: func(ctx context.Context, set func([]string)) { set(others); <-ctx.Done() }}, testLog(t))
	lbCtx, stopLB := context.WithCancel(ctx)
	lbDone := make(chan error, 1)
	go func() { lbDone <- lb.Run(lbCtx) }()
	t.Cleanup(func() { // before the cluster's own clean-up and leak check
		stopLB()
		if err := <-lbDone; err != nil {
			t.Errorf("balancer: %v", err)
		}
	})
	if err := lb.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	via, err := Dial([]string{"https://" + lb.Addr()}, tc.tls, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = via.Close() })

	put := func(key string) error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := via.client.Put(pctx, key, "v")
		return err
	}
	if err := put("before"); err != nil {
		t.Fatalf("a write through the balancer: %v", err)
	}
	tc.stop("a")
	deadline := time.Now().Add(20 * time.Second)
	for err := put("after"); err != nil; err = put("after") {
		if time.Now().After(deadline) {
			t.Fatalf("no write through the balancer within 20 s of the preferred member's stop: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, key := range []string{"before", "after"} {
		if ok, err := via.HasKey(ctx, key); err != nil || !ok {
			t.Errorf("key %q through the balancer after the stop: %v, %v", key, ok, err)
		}
	}
}
