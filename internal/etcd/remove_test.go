package etcd

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// Removing the leader of three moves leadership first; the removed member
// stops with ErrRemoved; the two left still serve.
func TestRemoveTheLeader(t *testing.T) {
	tc, ctx := newTestCluster(t, 2*bound)
	st := tc.three(ctx)
	leader := ""
	for _, m := range st {
		if m.Leader {
			leader = m.Name
		}
	}
	via := tc.dial(map[string]string{"a": "b", "b": "c", "c": "a"}[leader]) // a client of a member that stays
	removed, err := via.Remove(ctx, leader)
	if err != nil || removed.Name != leader {
		t.Fatalf("Remove(%s) = %+v, %v", leader, removed, err)
	}
	m := tc.members[leader]
	select {
	case err := <-m.exited:
		if !errors.Is(err, ErrRemoved) {
			t.Errorf("the removed member's Run = %v, want ErrRemoved", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the removed member still runs 30 s later")
	}
	m.exited = closedErr()
	ms, err := via.Members(ctx)
	if err != nil || len(ms) != 2 || slices.ContainsFunc(ms, func(m Member) bool { return m.Name == leader }) {
		t.Errorf("members after removing %s: %+v, %v", leader, ms, err)
	}
}

// A removal that would leave no quorum among the voters that answer, or
// that etcd could not commit, is refused with the numbers; a member that
// is not there is named; a member that is down is removed.
func TestRemoveRefusals(t *testing.T) {
	tc, ctx := newTestCluster(t, 2*bound)
	tc.join(ctx, "b")
	tc.join(ctx, "c")
	tc.stop("c")
	if _, err := tc.cluster.Remove(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "no etcd member nope") {
		t.Errorf("removing a member that is not there = %v", err)
	}
	if _, err := tc.cluster.Remove(ctx, "b"); err == nil || !strings.Contains(err.Error(), "leaves 2 voters of which 1 answer, fewer than the 2 a quorum needs") {
		t.Errorf("removing b with c down = %v; want a refusal with the numbers", err)
	}
	if _, err := tc.cluster.Remove(ctx, "c"); err != nil {
		t.Fatalf("removing the member that is down = %v; want it removed", err)
	}
	tc.stop("b")
	if _, err := tc.cluster.Remove(ctx, "b"); err == nil || !strings.Contains(err.Error(), "lost its quorum (1 of 2 voters answer)") {
		t.Errorf("removing b of two with b down = %v; want the lost quorum named", err)
	}
}

// A member removed while it was down learns it from the others when it
// starts again, and stops with ErrRemoved rather than as a crash.
func TestRemovedWhileDown(t *testing.T) {
	tc, ctx := newTestCluster(t, 2*bound)
	tc.join(ctx, "b")
	tc.join(ctx, "c")
	tc.stop("c")
	if _, err := tc.cluster.Remove(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	m := tc.members["c"]
	e := New(m.cfg, testLog(t).With("member", "c"))
	cancel, exited := start(t, e)
	defer cancel()
	select {
	case err := <-exited:
		if !errors.Is(err, ErrRemoved) {
			t.Errorf("the removed member's start = %v, want ErrRemoved", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the removed member still runs 40 s after its start")
	}
	<-e.closed
}
