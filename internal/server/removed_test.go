package server

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/fsutil"
)

// A removed server moves its etcd data aside, and its next start is
// refused with exit code 78 unless it joins again, which clears the record.
func TestRemovedServer(t *testing.T) {
	l := datadir.Layout{Data: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(l.Etcd(), "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := retire(l, slog.New(slog.DiscardHandler))
	var re *RemovedError
	if !errors.As(err, &re) || re.ExitCode() != 78 || !strings.Contains(err.Error(), "token create --role server") {
		t.Fatalf("retire = %v; want a RemovedError with exit code 78 saying how to join again", err)
	}
	aside, _ := filepath.Glob(l.Etcd() + "-removed-*/member")
	if _, statErr := os.Stat(l.Etcd()); statErr == nil || len(aside) != 1 || !strings.Contains(err.Error(), filepath.Dir(aside[0])) {
		t.Errorf("etcd data not moved aside (found %v), or the message does not name where: %v", aside, err)
	}
	if err := checkRemoved(l, false); !errors.As(err, &re) {
		t.Errorf("a start without a join: %v; want it refused", err)
	}
	if err := checkRemoved(l, true); err != nil {
		t.Errorf("a start that joins: %v; want it let through", err)
	}
	if err := clearRemoved(l); err != nil {
		t.Fatal(err)
	}
	if err := checkRemoved(l, false); err != nil {
		t.Errorf("after a join cleared the record: %v", err)
	}
}

// A join whose learner was removed before its promotion is undone: the
// etcd data goes aside with the join record, so the next start joins
// afresh rather than as the member the cluster removed.
func TestUndoJoin(t *testing.T) {
	l := datadir.Layout{Data: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(l.Etcd(), "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fsutil.SaveState(pendingFile(l), pendingPromotion{MemberID: 7}); err != nil {
		t.Fatal(err)
	}
	if !promotionPending(l) {
		t.Fatal("the join record is not seen")
	}
	err := undoJoin(l, etcd.ErrNotCaughtUp)
	if !errors.Is(err, etcd.ErrNotCaughtUp) || !strings.Contains(err.Error(), "join afresh") {
		t.Errorf("undoJoin = %v; want the cause and what to do", err)
	}
	aside, _ := filepath.Glob(l.Etcd() + "-failed-join-*/member")
	if l.HasEtcdData() || len(aside) != 1 || promotionPending(l) {
		t.Errorf("after undoJoin: etcd data in place %v, aside %v, record kept %v", l.HasEtcdData(), aside, promotionPending(l))
	}
}

// A join interrupted after its learner was added and before its etcd
// member wrote data restarts only as a join, never as a cluster of its own.
func TestUnstartedJoinNeedsTheJoinAgain(t *testing.T) {
	l := datadir.Layout{Data: t.TempDir()}
	alone, joins := &config.Server{}, &config.Server{Join: config.Join{Server: "https://10.0.0.2:6443"}}
	if err := checkUnstartedJoin(alone, l); err != nil {
		t.Errorf("a data dir without a join record: %v", err)
	}
	if err := fsutil.SaveState(pendingFile(l), pendingPromotion{MemberID: 7}); err != nil {
		t.Fatal(err)
	}
	if err := checkUnstartedJoin(alone, l); err == nil || !strings.Contains(err.Error(), "start it again with --server and --token") {
		t.Errorf("a start without --server after an unstarted join = %v; want it refused with what to do", err)
	}
	if err := checkUnstartedJoin(joins, l); err != nil {
		t.Errorf("the join started again: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(l.Etcd(), "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := checkUnstartedJoin(alone, l); err != nil {
		t.Errorf("a join interrupted once etcd had data resumes from the data dir alone: %v", err)
	}
}

func TestOwnAddress(t *testing.T) {
	if !ownAddress(netip.MustParseAddr("127.0.0.1")) {
		t.Error("127.0.0.1 is not seen as this machine's")
	}
	if ownAddress(netip.MustParseAddr("192.0.2.1")) { // TEST-NET-1: on no machine
		t.Error("192.0.2.1 is seen as this machine's")
	}
}
