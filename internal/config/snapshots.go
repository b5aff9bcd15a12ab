package config

import (
	"path/filepath"

	"github.com/monokube/monokube/internal/snapshot"
)

// Snapshots are a server's scheduled etcd snapshots.
type Snapshots struct {
	Disabled  bool   // --etcd-disable-snapshots: none on a schedule
	Schedule  string // a cron spec snapshot.ParseSchedule accepts
	Retention int    // scheduled snapshots kept, at least 1
	Dir       string // where this server keeps its snapshot files
}

// Restore is a start that restores the cluster from a snapshot file
// (--cluster-reset-restore-path), with the recovery key from a file when
// the data dir has none (a new machine).
type Restore struct {
	Path            string
	RecoveryKeyFile string
}

// SnapshotDir is where a server whose data dir is dataDir keeps its
// snapshots unless told otherwise.
func SnapshotDir(dataDir string) string {
	return filepath.Join(dataDir, "server", "db", "snapshots")
}

func (p *parser) snapshots(in ServerInput, dataDir string) Snapshots {
	s := Snapshots{Disabled: in.EtcdDisableSnapshots, Schedule: in.EtcdSnapshotScheduleCron, Retention: in.EtcdSnapshotRetention, Dir: SnapshotDir(dataDir)}
	if in.EtcdSnapshotDir != "" {
		s.Dir = p.absPath("etcd-snapshot-dir", in.EtcdSnapshotDir)
	}
	if s.Retention < 1 && !s.Disabled {
		p.fail("--etcd-snapshot-retention %d: keep at least 1 snapshot (to take none, give --etcd-disable-snapshots)", s.Retention)
	}
	if _, err := snapshot.ParseSchedule(s.Schedule); err != nil && !s.Disabled {
		p.errs = append(p.errs, err)
	}
	return s
}
