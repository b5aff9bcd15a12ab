package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/monokube/monokube/internal/fsutil"
)

// Local is the member a Cluster's client talks to: its name and its
// cluster's ID.
type Local struct {
	Name      string
	ClusterID uint64
}

// Local asks the member at the client's first endpoint who it is.
func (c *Cluster) Local(ctx context.Context) (Local, error) {
	endpoints := c.client.Endpoints()
	if len(endpoints) == 0 {
		return Local{}, errors.New("etcd: no endpoint")
	}
	st, err := c.client.Status(ctx, endpoints[0])
	if err != nil {
		return Local{}, fmt.Errorf("ask etcd at %s: %w", endpoints[0], err)
	}
	ms, err := c.memberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return Local{}, err
	}
	for _, m := range ms {
		if m.ID == st.Header.MemberId {
			return Local{Name: m.Name, ClusterID: st.Header.ClusterId}, nil
		}
	}
	return Local{}, fmt.Errorf("etcd at %s is member %x, which its member list lacks", endpoints[0], st.Header.MemberId)
}

// Snapshot streams the snapshot of the member at the client's first
// endpoint (its backend, then the SHA-256 etcd appends) to w.
func (c *Cluster) Snapshot(ctx context.Context, w io.Writer) error {
	rc, err := c.client.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	return nil
}

// RevisionBump is how far a restore moves etcd's revision past the
// snapshot's, with every older revision marked compacted: more than any
// cluster writes between a snapshot and its restore, so a client that
// watched from a revision it saw before the restore is told its revision
// is gone and lists again (kubernetes#107457) instead of waiting for
// revisions that the restored data reuses for other changes.
const RevisionBump = 1_000_000_000

// Restore makes dataDir the data of a new one-member cluster from the
// etcd snapshot at db (checked against its SHA-256): the member of node
// name at peer (PeerURL), its revision bumped by RevisionBump and
// compacted. dataDir must hold no etcd data: an empty dir is replaced,
// anything else moved aside. It writes into a sibling directory and
// renames it into place, so an interrupted restore leaves no half data
// dir under dataDir's name.
func Restore(db, dataDir, name, peer string) error {
	tmp := dataDir + ".restoring"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clear %s of an interrupted restore: %w", tmp, err)
	}
	err := etcdutl.NewV3(zap.NewNop()).Restore(etcdutl.RestoreConfig{
		SnapshotPath:        db,
		Name:                memberName(name),
		OutputDataDir:       tmp,
		PeerURLs:            []string{peer},
		InitialCluster:      memberName(name) + "=" + peer,
		InitialClusterToken: "etcd-cluster", // embed's default: the cluster ID a first start gets
		RevisionBump:        RevisionBump,
		MarkCompacted:       true,
	})
	if err != nil {
		return fmt.Errorf("restore etcd's data from the snapshot: %w", err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("restored etcd data: %w", err)
	}
	if err := os.Remove(dataDir); err != nil && !errors.Is(err, os.ErrNotExist) { // an empty dir, as a first start makes it
		if _, err := MoveAside(dataDir, "old"); err != nil { // something else: kept
			return fmt.Errorf("put the restored etcd data in place: %w", err)
		}
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return fmt.Errorf("put the restored etcd data in place: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(dataDir))
}

// MoveAside renames the etcd data dir at dataDir to a sibling named for
// why and the time, and returns the new path: data is never deleted.
func MoveAside(dataDir, why string) (string, error) {
	to := dataDir + "-" + why + "-" + time.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Rename(dataDir, to); err != nil {
		return "", fmt.Errorf("move etcd data %s aside: %w", dataDir, err)
	}
	return to, nil
}
