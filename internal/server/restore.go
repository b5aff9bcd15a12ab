package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/snapshot"
	"github.com/monokube/monokube/internal/upgrade"
)

// A restore (`monokube server --cluster-reset-restore-path FILE`) brings
// a cluster back from one snapshot file, on one of its servers or on a
// new machine, in two steps around the identity phase:
//
//	openRestore   (before the identity) checks everything and writes
//	              nothing: the file whole, of this cluster (when the data
//	              dir has an identity), opened by the recovery key, no
//	              other member of this server's cluster running
//	apply         (pre-run) records that a restore is under way, moves the
//	              etcd data aside, restores the snapshot's as a cluster of
//	              one member with its revision bumped and compacted, and
//	              drops the record
//
// Between them the identity phase writes the snapshot's identity (the
// same files, on a server of the cluster) and makes this server's leaves
// from it. A restore interrupted after its record is written refuses every
// start but the same command again (checkInterruptedRestore).

// restoring is a checked snapshot on its way into the data dir.
type restoring struct {
	file   string
	opened *snapshot.Opened
}

// restoreRecord is what an unfinished restore leaves in the server dir.
type restoreRecord struct {
	File  string    `json:"file"`
	Start time.Time `json:"start"`
}

func restoreRecordFile(l datadir.Layout) string { return filepath.Join(l.Server(), "restore.json") }

// openRestore checks the snapshot file of cfg.Restore and opens it.
func openRestore(ctx context.Context, cfg *config.Server, l datadir.Layout) (*restoring, error) {
	file, err := filepath.Abs(cfg.Restore.Path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(l.Etcd()), 0o700); err != nil { // room to check the file
		return nil, err
	}
	c := control.NewCreds(l)
	key, err := recoveryKey(cfg.Restore, c)
	if err != nil {
		return nil, err
	}
	cluster, err := clusterOf(c)
	if err != nil {
		return nil, err
	}
	o, err := snapshot.Open(file, filepath.Dir(l.Etcd()), cluster, key)
	if err != nil {
		return nil, fmt.Errorf("restore refused, nothing changed: %w", err)
	}
	r := &restoring{file: file, opened: o}
	data := upgrade.Record{Monokube: o.Manifest.Monokube, Kubernetes: o.Manifest.Kubernetes}
	if _, err := upgrade.Check(data, upgrade.Current(), true, "snapshot "+file); err != nil {
		r.discard()
		return nil, fmt.Errorf("restore refused, nothing changed: %w", err)
	}
	if _, err := identity.DecodeBundle(o.Identity, l); err != nil {
		r.discard()
		return nil, fmt.Errorf("restore refused, nothing changed: snapshot %s: %w", file, err)
	}
	if err := othersStopped(ctx, cfg, l, c); err != nil {
		r.discard()
		return nil, err
	}
	return r, nil
}

// recoveryKey is the key of --recovery-key-file, or else the data dir's.
func recoveryKey(r config.Restore, c control.Creds) (snapshot.Key, error) {
	switch {
	case r.RecoveryKeyFile != "":
		return snapshot.LoadKey(r.RecoveryKeyFile)
	case fsutil.Exists(c.RecoveryKey):
		return snapshot.LoadKey(c.RecoveryKey)
	}
	return snapshot.Key{}, errors.New("restore refused, nothing changed: this data dir holds no recovery key (a new machine): " +
		"give --recovery-key-file FILE, a file (0600) holding the recovery key of the cluster that took the snapshot")
}

// clusterOf is the fingerprint of the data dir's server CA, or "" for a
// data dir without one (a new machine).
func clusterOf(c control.Creds) (string, error) {
	if !fsutil.Exists(c.ServerCA.Cert()) {
		return "", nil
	}
	ca, err := pki.Load(c.ServerCA)
	if err != nil {
		return "", fmt.Errorf("restore refused, nothing changed: read this server's CA: %w", err)
	}
	return snapshot.Fingerprint(ca.Cert.Raw), nil
}

// othersStopped refuses a restore on a server while another member of
// its cluster runs: that member would go on with the data the restore
// replaces.
func othersStopped(ctx context.Context, cfg *config.Server, l datadir.Layout, c control.Creds) error {
	if !l.HasEtcdData() {
		return nil
	}
	ms, err := etcd.StoredMembers(l.Etcd())
	if err != nil {
		return fmt.Errorf("restore refused, nothing changed: %w", err)
	}
	var others []etcd.Member
	for _, m := range ms {
		if m.Name != cfg.NodeName {
			others = append(others, m)
		}
	}
	if err := etcd.NoneAnswer(ctx, others, etcd.ClientTLS{CAFile: c.EtcdCA.Cert(), CertFile: c.EtcdPeer.Cert(), KeyFile: c.EtcdPeer.Key()}); err != nil {
		return fmt.Errorf("restore refused, nothing changed: %w", err)
	}
	return nil
}

// writeIdentity puts the snapshot's identity in the data dir: the files
// that are there already must be the same (identity.Bundle.Write).
func (r *restoring) writeIdentity(l datadir.Layout) error {
	b, err := identity.DecodeBundle(r.opened.Identity, l)
	if err != nil {
		return err
	}
	if err := b.Write(l); err != nil {
		return fmt.Errorf("restore refused: %w", err)
	}
	return nil
}

// apply replaces this server's etcd data with the snapshot's.
func (r *restoring) apply(cfg *config.Server, l datadir.Layout, log *slog.Logger) error {
	defer r.discard()
	if err := fsutil.SaveState(restoreRecordFile(l), restoreRecord{File: r.file, Start: time.Now().UTC()}); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if l.HasEtcdData() {
		aside, err := etcd.MoveAside(l.Etcd(), "old")
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		log.Info("restore: this server's etcd data moved aside", "to", aside)
	}
	if err := etcd.Restore(r.opened.DB, l.Etcd(), cfg.NodeName, etcd.PeerURL(cfg.NodeIP)); err != nil {
		return fmt.Errorf("restore from %s: %w; run the same command again", r.file, err)
	}
	for _, f := range []string{pendingFile(l), removalFile(l), restoreRecordFile(l)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
	}
	m := r.opened.Manifest
	log.Warn("restored from snapshot: this server is the only etcd member of the cluster, whose data is now the snapshot's",
		"file", r.file, "taken", m.Created, "on", m.Node, "revision", m.Revision, "bumpedBy", etcd.RevisionBump)
	return nil
}

// discard removes the snapshot's etcd data extracted for the restore.
func (r *restoring) discard() { _ = os.Remove(r.opened.DB) }

// checkInterruptedRestore refuses a start over a restore that did not
// finish, unless it is the restore again.
func checkInterruptedRestore(cfg *config.Server, l datadir.Layout) error {
	var rec restoreRecord
	fsutil.LoadState(restoreRecordFile(l), &rec)
	if rec.File == "" || cfg.Restore.Path != "" {
		return nil
	}
	return fmt.Errorf("a restore from %s began at %s and did not finish: run it again (`monokube server --cluster-reset-restore-path %s`); "+
		"the etcd data that was here before it is in %s-old-*", rec.File, rec.Start.Local().Format(time.DateTime), rec.File, l.Etcd())
}

// announceRestore tells the user, once the restored server serves, what
// to do with the cluster's other servers.
func announceRestore(cfg *config.Server, r *restoring, log *slog.Logger) func() {
	return func() {
		log.Warn("cluster restored: this server serves the snapshot's data as the only etcd member; every watcher lists again (the revision moved on). "+
			"Other servers of the cluster refuse to start as they are (they find they were removed, exit 78 and keep their etcd data aside); "+
			"to bring each back: `monokube token create --role server` here, then start it with --server and --token-file. Agents reconnect by themselves. "+
			"Later starts of this server need no restore flags",
			"file", r.file, "server", cfg.AdvertiseAddress.String())
	}
}

// stillMember asks the other members this server's etcd data names
// whether they still count it; one that answers without it belongs to a
// cluster that was reset or restored without this server, which then
// retires (exit 78, data aside, the command to join again) instead of
// starting a member nobody will talk to.
func stillMember(ctx context.Context, cfg *config.Server, l datadir.Layout, c control.Creds, log *slog.Logger) error {
	if !l.HasEtcdData() {
		return nil
	}
	ms, err := etcd.StoredMembers(l.Etcd())
	if err != nil {
		return nil //nolint:nilerr // etcd reads its own data and says what is wrong with it
	}
	by, removed, err := etcd.RemovedBy(ctx, ms, cfg.NodeName, etcd.ClientTLS{CAFile: c.EtcdCA.Cert(), CertFile: c.EtcdPeer.Cert(), KeyFile: c.EtcdPeer.Key()})
	if err != nil || !removed {
		return err
	}
	log.Warn("another server of this cluster no longer counts this server's etcd member: the cluster was reset or restored from a snapshot without it", "server", by.Name, "peerURLs", by.PeerURLs)
	return retire(l, log)
}
