// Package snapshot makes, reads and keeps monokube's etcd snapshot files:
// one file that holds what a restore needs and etcd alone does not.
//
// A snapshot file (NAME.snapshot.tar) is a plain tar archive, so `tar tvf`
// shows what is inside, with four entries in this order:
//
//	manifest.json    what the snapshot is: cluster, etcd revision, node,
//	                 time, versions, the ID of the key that sealed it
//	identity.sealed  the cluster identity (identity.Bundle: every CA with
//	                 its key, the service-account key, the Secrets
//	                 encryption key), sealed with the cluster's recovery
//	                 key (AES-256-GCM, the manifest as associated data)
//	etcd.db          etcd's snapshot: its backend, followed by the SHA-256
//	                 that etcd appends
//	SHA256SUMS       the SHA-256 of each entry before it
//
// The recovery key (Key) is not a join token: rotating tokens never
// voids a snapshot. Each server holds it in <data-dir>/server/cred; it is
// printed once, at the first start of a cluster's first server.
//
// A file only gets its name once it is whole: it is written under a
// temporary name, fsynced, checked and then renamed (Dir.Save), so an
// interrupted write never leaves a file that List calls good or that a
// restore accepts.
package snapshot
