package snapshot

import (
	"fmt"
	"os"
	"time"
)

// Inspect reads the manifest of the snapshot file at path and checks that
// the file is whole, without reading etcd's data (the tar reader seeks
// past it): what listing a directory of snapshots affords. Verify checks
// every byte.
func Inspect(path string) (Manifest, error) {
	c, err := read(path, false, nil)
	if err != nil {
		return Manifest{}, err
	}
	return c.manifest, checkFormat(path, c.manifest)
}

// Opened is a snapshot file checked whole and opened with the recovery
// key: what a restore needs.
type Opened struct {
	Manifest Manifest
	Identity []byte // an encoded identity.Bundle
	// DB is etcd's snapshot, extracted to a file of its own that the
	// caller removes.
	DB string
}

// Open checks every byte of the snapshot file at path, extracting etcd's
// snapshot into scratch, then opens the identity with key. A non-empty
// cluster is the fingerprint of the cluster the snapshot must be of (the
// restoring server's own). Each refusal has its own message: damaged or
// truncated (*Damaged), another cluster's, a key that does not open it.
func Open(path, scratch, cluster string, key Key) (*Opened, error) {
	m, c, db, err := check(path, scratch)
	if err != nil {
		return nil, err
	}
	if cluster != "" && m.Cluster != cluster {
		_ = os.Remove(db)
		return nil, fmt.Errorf("snapshot file %s is a snapshot of another cluster (cluster %.12s, node %s, %s) than this server's (cluster %.12s): "+
			"restore it with an empty --data-dir (and --recovery-key-file), or pick a snapshot of this cluster",
			path, m.Cluster, m.Node, m.Created.Format(time.RFC3339), cluster)
	}
	identity, err := c.open(path, key)
	if err != nil {
		_ = os.Remove(db)
		return nil, err
	}
	return &Opened{Manifest: m, Identity: identity, DB: db}, nil
}

// Verify checks every byte of the snapshot file at path (scratch holds a
// copy of etcd's data meanwhile) and, with a key, that the key opens it.
func Verify(path, scratch string, key *Key) (Manifest, error) {
	m, c, db, err := check(path, scratch)
	if err != nil {
		return Manifest{}, err
	}
	defer os.Remove(db)
	if key != nil {
		if _, err := c.open(path, *key); err != nil {
			return Manifest{}, err
		}
	}
	return m, nil
}

// check reads the whole file and checks etcd's data in it.
func check(path, scratch string) (Manifest, *contents, string, error) {
	db, c, err := extractDB(path, scratch)
	if err != nil {
		return Manifest{}, nil, "", err
	}
	if err := checkFormat(path, c.manifest); err != nil {
		_ = os.Remove(db)
		return Manifest{}, nil, "", err
	}
	if _, err := checkDB(db); err != nil {
		_ = os.Remove(db)
		return Manifest{}, nil, "", &Damaged{Path: path, Why: err.Error()}
	}
	return c.manifest, c, db, nil
}

// open unseals the identity with key.
func (c *contents) open(path string, key Key) ([]byte, error) {
	if key.ID() != c.manifest.RecoveryKeyID {
		return nil, fmt.Errorf("the recovery key does not open snapshot file %s: it was sealed with the key whose ID is %s, and the key given has ID %s. "+
			"Give the recovery key of the cluster that took it (--recovery-key-file; `monokube etcd-snapshot recovery-key` on one of its servers prints it)",
			path, c.manifest.RecoveryKeyID, key.ID())
	}
	plain, err := key.open(c.sealed, c.manifestRaw)
	if err != nil {
		return nil, &Damaged{Path: path, Why: "its sealed identity does not open with the key that sealed it"}
	}
	if c.sums[entryEtcd] != "" && c.sums[entryEtcd] != c.manifest.EtcdSHA256 {
		return nil, &Damaged{Path: path, Why: "its etcd.db is not the one its sealed manifest names (replaced after the snapshot was taken)"}
	}
	return plain, nil
}
