package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/snapshot"
	"github.com/monokube/monokube/internal/upgrade"
)

// A server takes etcd snapshots three ways, all into its snapshot dir and
// all the same file (package snapshot): on its schedule (snapshotSchedule,
// a component), on demand (`monokube etcd-snapshot save`: TakeSnapshot)
// and, from its stopped data, before a minor upgrade (preUpgradeSnapshot).

// Name prefixes of the snapshot files of each kind.
const (
	scheduledPrefix  = "etcd-snapshot"
	preUpgradePrefix = "pre-upgrade"
	// OnDemandPrefix names on-demand snapshots unless the user gives --name.
	OnDemandPrefix = "on-demand"
)

// TakeSnapshot takes a snapshot of the running etcd member of the server
// whose data dir is l into dir, named prefix-NODE-UNIXTIME.
func TakeSnapshot(ctx context.Context, l datadir.Layout, dir string, kind snapshot.Kind, prefix string) (snapshot.Entry, error) {
	cluster, err := control.NewCreds(l).LocalEtcd(slog.New(slog.DiscardHandler))
	if err != nil {
		return snapshot.Entry{}, err
	}
	defer cluster.Close()
	local, err := cluster.Local(ctx)
	if err != nil {
		return snapshot.Entry{}, fmt.Errorf("%w: is this server's monokube running?", err)
	}
	t, err := snapshotOf(l, kind, prefix, local, upgrade.Current(), time.Now())
	if err != nil {
		return snapshot.Entry{}, err
	}
	return snapshot.Dir{Path: dir}.Save(func(w io.Writer) error { return cluster.Snapshot(ctx, w) }, t)
}

// snapshotOf is what goes into a snapshot besides etcd's data: the
// identity, the recovery key that seals it, and the manifest, which names
// the versions that wrote the data (ver).
func snapshotOf(l datadir.Layout, kind snapshot.Kind, prefix string, local etcd.Local, ver upgrade.Record, now time.Time) (snapshot.Taken, error) {
	id, err := identity.Load(l)
	if err != nil {
		return snapshot.Taken{}, err
	}
	b, err := id.Bundle()
	if err != nil {
		return snapshot.Taken{}, err
	}
	enc, err := b.Encode()
	if err != nil {
		return snapshot.Taken{}, err
	}
	key, err := snapshot.LoadKey(id.Creds.RecoveryKey)
	if err != nil {
		return snapshot.Taken{}, fmt.Errorf("%w (a server makes its recovery key when it starts: start it once with this monokube version)", err)
	}
	return snapshot.Taken{
		Manifest: snapshot.Manifest{
			Name: fmt.Sprintf("%s-%s-%d", prefix, local.Name, now.Unix()), Kind: kind,
			Cluster: snapshot.Fingerprint(id.CAs.Server.Cert.Raw), EtcdClusterID: fmt.Sprintf("%x", local.ClusterID),
			Node: local.Name, Created: now.UTC(), Monokube: ver.Monokube, Kubernetes: ver.Kubernetes,
		},
		Identity: enc, Key: key,
	}, nil
}

// snapshotSchedule takes the server's scheduled snapshots and keeps the
// newest cfg.Retention of them. A failed snapshot (a full disk) is logged
// and reported as a Warning event on the server's Node; it never stops
// the server.
type snapshotSchedule struct {
	cfg    config.Snapshots
	when   snapshot.Schedule
	node   string
	events kubernetes.Interface // for Warning events
	log    *slog.Logger
	// save takes one scheduled snapshot: TakeSnapshot, or a test's.
	save func(context.Context) (snapshot.Entry, error)
}

var _ lifecycle.Component = (*snapshotSchedule)(nil)

// snapshotComponent is the server's snapshot schedule; it records events
// as the controller-manager, whose rights include that.
func snapshotComponent(cfg *config.Server, l datadir.Layout, c control.Creds, log *slog.Logger) (*snapshotSchedule, error) {
	when, err := snapshot.ParseSchedule(cfg.Snapshots.Schedule)
	if err != nil {
		return nil, err
	}
	events, err := controllerClient(cfg, c, c.ControllerManager)
	if err != nil {
		return nil, err
	}
	s := &snapshotSchedule{cfg: cfg.Snapshots, when: when, node: cfg.NodeName, events: events, log: log.With("component", "etcd-snapshots")}
	s.save = func(ctx context.Context) (snapshot.Entry, error) {
		return TakeSnapshot(ctx, l, cfg.Snapshots.Dir, snapshot.Scheduled, scheduledPrefix)
	}
	return s, nil
}

// Name implements lifecycle.Component.
func (*snapshotSchedule) Name() string { return "etcd-snapshots" }

// Run takes a snapshot at each time of the schedule until ctx ends.
func (s *snapshotSchedule) Run(ctx context.Context) error {
	for {
		next := s.when.NextFor(s.node, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
		s.take(ctx)
	}
}

func (s *snapshotSchedule) take(ctx context.Context) {
	e, err := s.save(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("scheduled etcd snapshot failed; the server goes on, and the snapshots kept so far stay", "dir", s.cfg.Dir, "err", err)
			s.warn(ctx, err)
		}
		return
	}
	s.log.Info("etcd snapshot saved", "kind", e.Kind, "name", e.Name, "size", e.Size, "revision", e.Revision)
	pruned, err := snapshot.Dir{Path: s.cfg.Dir}.Prune(snapshot.Scheduled, s.node, s.cfg.Retention)
	if err != nil {
		s.log.Warn("pruning scheduled etcd snapshots", "dir", s.cfg.Dir, "err", err)
	}
	if len(pruned) > 0 {
		s.log.Info("pruned scheduled etcd snapshots beyond the retention", "retention", s.cfg.Retention, "deleted", pruned)
	}
}

// warn records a Warning event on the server's Node, best effort.
func (s *snapshotSchedule) warn(ctx context.Context, cause error) {
	nodeWarning(ctx, s.events, s.node, "EtcdSnapshotFailed", "monokube-etcd-snapshot", "scheduled etcd snapshot failed: "+cause.Error(), s.log)
}

// preUpgradeSnapshot snapshots the stopped etcd data of a server about to
// run a newer Kubernetes minor version, before anything of the new version
// touches it; kept like scheduled ones, by count. Without a snapshot the
// upgrade does not start, unless snapshots are off
// (--etcd-disable-snapshots).
func preUpgradeSnapshot(cfg *config.Server, l datadir.Layout, from upgrade.Record, log *slog.Logger) error {
	if cfg.Snapshots.Disabled || !l.HasEtcdData() {
		return nil
	}
	t, err := snapshotOf(l, snapshot.PreUpgrade, preUpgradePrefix, etcd.Local{Name: cfg.NodeName}, from, time.Now())
	if err != nil {
		return err
	}
	d := snapshot.Dir{Path: cfg.Snapshots.Dir}
	e, err := d.Save(snapshot.FromBackend(l.EtcdBackend()), t)
	if err != nil {
		return fmt.Errorf("no snapshot before the minor upgrade, so the upgrade waits: make room in %s (or give another --etcd-snapshot-dir), or upgrade without one with --etcd-disable-snapshots: %w", cfg.Snapshots.Dir, err)
	}
	log.Info("etcd snapshot saved before the minor upgrade", "kind", e.Kind, "name", e.Name, "size", e.Size, "revision", e.Revision)
	if _, err := d.Prune(snapshot.PreUpgrade, cfg.NodeName, cfg.Snapshots.Retention); err != nil {
		log.Warn("pruning pre-upgrade etcd snapshots", "err", err)
	}
	return nil
}
