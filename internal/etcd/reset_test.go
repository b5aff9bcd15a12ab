package etcd

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// A cluster reset is refused while another member answers; once the
// others are down it makes the one member left a cluster of its own over
// its data, and a dropped member that starts again learns it was removed.
func TestClusterReset(t *testing.T) {
	tc, ctx := newTestCluster(t, 3*bound)
	tc.three(ctx)
	if _, err := tc.cluster.client.Put(ctx, "/monokube/before-reset", "kept"); err != nil {
		t.Fatal(err)
	}
	peer := ClientTLS{CAFile: tc.base.CAFile, CertFile: tc.base.PeerCert, KeyFile: tc.base.PeerKey}
	tc.stop("a")
	ms, err := StoredMembers(tc.config("a").DataDir)
	if err != nil || len(ms) != 3 {
		t.Fatalf("StoredMembers = %+v, %v; want a, b and c", ms, err)
	}
	if _, err := PlanReset(ctx, ms, "a", peer); err == nil || !strings.Contains(err.Error(), "splits the cluster in two") ||
		!strings.Contains(err.Error(), "b [") || !strings.Contains(err.Error(), "c [") {
		t.Errorf("PlanReset with b and c running = %v; want a refusal naming both", err)
	}
	if _, err := PlanReset(ctx, ms, "z", peer); err == nil || !strings.Contains(err.Error(), "no member named z") {
		t.Errorf("PlanReset of a name that is no member = %v", err)
	}
	tc.stop("b")
	tc.stop("c")
	r, err := PlanReset(ctx, ms, "a", peer)
	if err != nil || r.Self.Name != "a" || len(r.Dropped) != 2 {
		t.Fatalf("PlanReset with the others down = %+v, %v; want a kept, b and c dropped", r, err)
	}

	cfg := tc.config("a")
	cfg.ForceNewCluster = true
	tc.run("a", cfg)
	resp, err := tc.cluster.client.Get(ctx, "/monokube/before-reset")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Errorf("the key written before the reset: %+v, %v", resp, err)
	}
	if names := tc.voters(ctx); !slices.Equal(names, []string{"a"}) {
		t.Errorf("members after the reset = %v, want a alone", names)
	}
	if _, err := tc.cluster.client.Put(ctx, "/monokube/after-reset", "written"); err != nil {
		t.Errorf("a write after the reset: %v", err)
	}

	e := New(tc.config("c"), testLog(t).With("member", "c"))
	cancel, exited := start(t, e)
	defer cancel()
	select {
	case err := <-exited:
		if !errors.Is(err, ErrRemoved) {
			t.Errorf("a dropped member's start = %v, want ErrRemoved", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("a dropped member still runs 40 s after its start")
	}
	<-e.closed
}

// StoredMembers of a data dir that holds no etcd data says so.
func TestStoredMembersNoData(t *testing.T) {
	if _, err := StoredMembers(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no etcd data") {
		t.Errorf("StoredMembers of an empty dir = %v", err)
	}
}

// TestRemovedBy: a member removed while it was down learns it from the
// others before it starts (their lists, confirmed by a linearizable
// read); a member still listed does not.
func TestRemovedBy(t *testing.T) {
	tc, ctx := newTestCluster(t, 2*time.Minute)
	tc.three(ctx)
	ms, err := tc.cluster.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tc.stop("c")
	if _, err := tc.cluster.Remove(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	peer := ClientTLS{CAFile: tc.base.CAFile, CertFile: tc.base.PeerCert, KeyFile: tc.base.PeerKey}
	by, removed, err := RemovedBy(ctx, ms, "c", peer)
	if err != nil || !removed || (by.Name != "a" && by.Name != "b") {
		t.Fatalf("RemovedBy(c) = %v, %t, %v; want removed, by a or b", by.Name, removed, err)
	}
	if by, removed, err := RemovedBy(ctx, ms, "a", peer); err != nil || removed {
		t.Fatalf("RemovedBy(a) = %v, %t, %v; want still a member", by.Name, removed, err)
	}
}
