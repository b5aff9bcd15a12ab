package server

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/satoken"
	"github.com/monokube/monokube/internal/snapshot"
	"github.com/monokube/monokube/internal/upgrade"
)

// A restore (`monokube server --cluster-reset-restore-path FILE`) brings
// a cluster back from one snapshot file, on one of its servers or on a
// new machine, in three steps:
//
//	openRestore  (identity phase) checks everything before it writes
//	             anything but a scratch copy of etcd's data: the file
//	             whole, of this cluster (when the data dir has an
//	             identity), of a Kubernetes minor version this one runs,
//	             opened by the recovery key, no member of the snapshot's
//	             or this server's cluster running
//	begin        (identity phase) records that a restore is under way,
//	             then writes the snapshot's identity (the same files, on a
//	             server of the cluster), from which the identity phase
//	             makes this server's leaves
//	apply        (pre-run) moves the etcd data aside, restores the
//	             snapshot's as a cluster of one member with its revision
//	             bumped and compacted, and drops the record
//
// A restore interrupted once its record is written refuses every start
// but a restore (checkInterruptedRestore): never a plain start over the
// identity alone, which would be an empty cluster with the old keys.

// restoring is a checked snapshot on its way into the data dir.
type restoring struct {
	file   string
	opened *snapshot.Opened
	bundle identity.Bundle // the snapshot's identity, checked whole
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
		return nil, fmt.Errorf("restore refused, nothing changed: %w", err)
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
	if err := r.check(ctx, cfg, l); err != nil {
		r.discard()
		return nil, fmt.Errorf("restore refused, nothing changed: %w", err)
	}
	return r, nil
}

// check refuses a snapshot of a newer Kubernetes minor version, one whose
// identity is not whole, and a restore while a member runs.
func (r *restoring) check(ctx context.Context, cfg *config.Server, l datadir.Layout) error {
	m := r.opened.Manifest
	if _, err := upgrade.Check(upgrade.Record{Monokube: m.Monokube, Kubernetes: m.Kubernetes}, upgrade.Current(), true, "snapshot "+r.file); err != nil {
		return err
	}
	b, err := identity.DecodeBundle(r.opened.Identity, l)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", r.file, err)
	}
	r.bundle = b
	return othersStopped(ctx, cfg, l, r)
}

// recoveryKey is the key of --recovery-key-file, or else the data dir's.
func recoveryKey(r config.Restore, c control.Creds) (snapshot.Key, error) {
	switch {
	case r.RecoveryKeyFile != "":
		k, err := snapshot.LoadKey(r.RecoveryKeyFile)
		if err != nil {
			return snapshot.Key{}, fmt.Errorf("--recovery-key-file: %w; give the file holding the cluster's recovery key", err)
		}
		return k, nil
	case fsutil.Exists(c.RecoveryKey):
		return snapshot.LoadKey(c.RecoveryKey)
	}
	return snapshot.Key{}, errors.New("this data dir holds no recovery key (a new machine): " +
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

// othersStopped refuses a restore while a member of the snapshot's
// cluster, or of this server's, answers on its peer port: it would go on
// with the data the restore replaces (a split brain). It asks with a
// certificate of the snapshot's etcd CA, made in memory, so it works on a
// new machine and after an interrupted restore moved the data aside.
func othersStopped(ctx context.Context, cfg *config.Server, l datadir.Layout, r *restoring) error {
	ms, err := etcd.BackendMembers(r.opened.DB)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", r.file, err)
	}
	if l.HasEtcdData() {
		local, err := etcd.StoredMembers(l.Etcd())
		if err != nil {
			return err
		}
		ms = append(ms, local...)
	}
	self := etcd.PeerURL(cfg.NodeIP)
	var others []etcd.Member
	for _, m := range ms {
		if m.Name != cfg.NodeName && !slices.Contains(m.PeerURLs, self) &&
			!slices.ContainsFunc(others, func(o etcd.Member) bool { return o.ID == m.ID }) {
			others = append(others, m)
		}
	}
	tlsCfg, err := r.bundle.EtcdClientTLS(l, time.Now())
	if err != nil {
		return err
	}
	return etcd.NoneAnswer(ctx, others, tlsCfg)
}

// begin records that a restore is under way, then puts the snapshot's
// identity in the data dir: files there already must be the same
// (identity.Bundle.Write checks them all before it writes one), except
// the recovery key, which becomes the snapshot's (servers of a cluster
// made before snapshots each made their own), and the keys a rotation
// changes, which become the snapshot's, those its etcd data was written
// with. A refusal drops the record:
// nothing was written.
func (r *restoring) begin(l datadir.Layout, c control.Creds, log *slog.Logger) error {
	if err := fsutil.SaveState(restoreRecordFile(l), restoreRecord{File: r.file, Start: time.Now().UTC()}); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	key := r.bundle.TakeRecoveryKey(l)
	rotating := r.bundle.TakeRotating(l)
	if err := r.bundle.Write(l); err != nil {
		_ = os.Remove(restoreRecordFile(l))
		return fmt.Errorf("restore refused, nothing changed: %w", err)
	}
	keepVerifying(rotating, c.ServicePub, time.Now())
	if err := fsutil.WriteFiles(rotating...); err != nil {
		return fmt.Errorf("restore: the snapshot's Secrets encryption and service-account keys: %w", err)
	}
	if len(key) == 0 {
		return nil
	}
	if have, err := os.ReadFile(c.RecoveryKey); err == nil && !bytes.Equal(have, key) {
		log.Warn("restore: this server's recovery key becomes the snapshot's; `monokube etcd-snapshot recovery-key` prints it", "id", r.opened.Manifest.RecoveryKeyID)
	}
	return fsutil.WriteFile(c.RecoveryKey, key, 0o600)
}

// keepVerifying adds to the snapshot's service-account verifying keys in
// files those this server's pub file holds and the snapshot's does not
// (a key rotated in after the snapshot), each until it retires (a year
// from now if it had no end): the tokens pods hold now keep working after
// the restore.
func keepVerifying(files []fsutil.File, pub string, now time.Time) {
	have, err := os.ReadFile(pub)
	if err != nil {
		return // a new machine: nothing to keep
	}
	for i, f := range files {
		if f.Path != pub {
			continue
		}
		known := map[string]bool{}
		for b, rest := pem.Decode(f.Data); b != nil; b, rest = pem.Decode(rest) {
			known[string(b.Bytes)] = true
		}
		for b, rest := pem.Decode(have); b != nil; b, rest = pem.Decode(rest) {
			if b.Type != "PUBLIC KEY" || known[string(b.Bytes)] {
				continue
			}
			if b.Headers[satoken.RetireHeader] == "" {
				b.Headers = map[string]string{satoken.RetireHeader: now.Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)}
			}
			files[i].Data = append(bytes.Clone(files[i].Data), pem.EncodeToMemory(b)...)
		}
	}
}

// apply replaces this server's etcd data with the snapshot's.
func (r *restoring) apply(cfg *config.Server, l datadir.Layout, log *slog.Logger) error {
	defer r.discard()
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
// finish, unless it is a restore (of that file or another).
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
