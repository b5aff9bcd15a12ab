package etcd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/monokube/monokube/internal/pki"
)

// TestSnapshotRestore: a snapshot streamed from a running member restores
// into a new data dir that a member starts over; the key written before
// the snapshot is there, the one written after is not, the revision has
// moved on by RevisionBump and reading at an old revision says it was
// compacted (so a watcher lists again).
func TestSnapshotRestore(t *testing.T) {
	cfg, cert := testConfig(t)
	e := New(cfg, testLog(t))
	cancel, exited := start(t, e)
	waitReady(t, e)
	c := dial(t, cfg, cert)
	put(t, c, "/before", "1")
	if local, err := c.Local(t.Context()); err != nil || local.Name != cfg.NodeName || local.ClusterID == 0 {
		t.Fatalf("Local = %+v, %v", local, err)
	}
	var db bytes.Buffer
	if err := c.Snapshot(t.Context(), &db); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	rev := put(t, c, "/after", "2")
	c.Close()
	cancel()
	if err := wait(t, exited); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(file, db.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if ms, err := BackendMembers(file); err != nil || len(ms) != 1 || ms[0].Name != cfg.NodeName {
		t.Fatalf("members in the snapshot: %+v, %v", ms, err)
	}
	if _, err := MoveAside(cfg.DataDir, "old"); err != nil {
		t.Fatal(err)
	}
	peer := httpsURL(cfg.NodeIP, cfg.PeerPort)
	if err := Restore(file, cfg.DataDir, cfg.NodeName, peer.String()); err != nil {
		t.Fatal(err)
	}
	e = New(cfg, testLog(t))
	cancel, exited = start(t, e)
	defer func() { cancel(); _ = wait(t, exited) }()
	waitReady(t, e)
	c = dial(t, cfg, cert)
	defer c.Close()
	checkRestored(t, c, rev)
}

func checkRestored(t *testing.T, c *Cluster, oldRev int64) {
	t.Helper()
	ctx := t.Context()
	before, err := c.client.Get(ctx, "/before")
	if err != nil || len(before.Kvs) != 1 {
		t.Fatalf("/before after the restore: %v %v", before, err)
	}
	if after, err := c.client.Get(ctx, "/after"); err != nil || len(after.Kvs) != 0 {
		t.Fatalf("/after, written after the snapshot, is back: %v %v", after, err)
	}
	if before.Header.Revision < RevisionBump {
		t.Errorf("revision after the restore %d, want ≥ %d", before.Header.Revision, RevisionBump)
	}
	_, err = c.client.Get(ctx, "/before", clientv3.WithRev(oldRev))
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("get at the old revision %d: %v, want %v", oldRev, err, rpctypes.ErrCompacted)
	}
}

func dial(t *testing.T, cfg Config, cert pki.Files) *Cluster {
	t.Helper()
	u := clientURL(cfg.ClientPort)
	c, err := Dial([]string{u.String()}, ClientTLS{CAFile: cfg.CAFile, CertFile: cert.Cert(), KeyFile: cert.Key()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func put(t *testing.T, c *Cluster, k, v string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	resp, err := c.client.Put(ctx, k, v)
	if err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
	return resp.Header.Revision
}
