package identity

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/snapshot"
)

// The cluster's recovery key seals the identity inside every etcd
// snapshot (package snapshot). It travels with the identity (a joining
// server takes it in the Bundle, a restore puts the snapshot's back) but
// is optional in a Bundle: a cluster made before snapshots existed has
// none until its servers start with this version, and each of those then
// makes its own (see the README on upgrading).

// ensureRecoveryKey keeps the recovery key, or makes it (a cluster's
// first start) and returns it to be shown once, never in the log: it
// opens every snapshot's keys.
func ensureRecoveryKey(c control.Creds, log *slog.Logger) (made *snapshot.Key, err error) {
	k, created, err := snapshot.EnsureKey(c.RecoveryKey)
	if err != nil || !created {
		return nil, err
	}
	log.Warn("made the cluster's recovery key: it opens the identity inside every etcd snapshot of this cluster, and a restore on a new machine needs it. "+
		"Keep a copy away from the cluster; `monokube etcd-snapshot recovery-key` on any server prints it", "file", c.RecoveryKey)
	return &k, nil
}

// ShowRecoveryKey prints a recovery key Init made, once, on out (a
// terminal; nil: nowhere).
func (id *Identity) ShowRecoveryKey(out io.Writer) error {
	if id.MadeRecoveryKey == nil || out == nil {
		return nil
	}
	_, err := fmt.Fprintf(out, "\nCluster recovery key (shown once; keep a copy away from the cluster):\n\n  %s\n\n", id.MadeRecoveryKey)
	return err
}

// optionalBundlePaths are files a Bundle carries when the server has them.
func optionalBundlePaths(l datadir.Layout) []string {
	c := control.NewCreds(l)
	out := []string{rel(l, c.RecoveryKey)}
	for _, a := range authorities(c) { // a CA rotation's new key, in its trust step
		out = append(out, rel(l, nextKey(a.files)), rel(l, crossCert(a.files)))
	}
	return out
}

// TakeRecoveryKey removes the recovery key from b and returns it (nil
// when b has none): a restore writes the snapshot's key over a server's
// own, and the rest of b only where it matches what is there.
func (b *Bundle) TakeRecoveryKey(l datadir.Layout) []byte {
	p := rel(l, control.NewCreds(l).RecoveryKey)
	key := b.Files[p]
	delete(b.Files, p)
	return key
}

// TakeRotating removes from b the files a key rotation changes (the
// Secrets encryption config and the service-account keys) and returns
// them to write, with their modes: a restore puts the snapshot's in place
// of a server's own, which may be newer, since the snapshot's etcd data
// was written with them. It also drops the CAs of b that l has already:
// a server keeps its own, which a CA rotation may have made after the
// snapshot and which every node trusts now (etcd's data depends on none).
func (b *Bundle) TakeRotating(l datadir.Layout) []fsutil.File {
	c := control.NewCreds(l)
	for _, a := range authorities(c) {
		if fsutil.Exists(a.files.Cert()) {
			for _, f := range []string{a.files.Cert(), a.files.Key(), nextKey(a.files), crossCert(a.files)} {
				delete(b.Files, rel(l, f))
			}
		}
	}
	var out []fsutil.File
	for _, f := range []fsutil.File{{Path: c.EncryptionConfig, Mode: 0o600}, {Path: c.ServiceKey, Mode: 0o600}, {Path: c.ServicePub, Mode: 0o644}} {
		p := rel(l, f.Path)
		if data, ok := b.Files[p]; ok {
			f.Data = data
			out = append(out, f)
			delete(b.Files, p)
		}
	}
	return out
}
