package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Ext ends every snapshot file's name.
const Ext = ".snapshot.tar"

// formatVersion is the layout of a snapshot file this package writes and
// reads.
const formatVersion = 1

// The entries of a snapshot file, in order.
const (
	entryManifest = "manifest.json"
	entryIdentity = "identity.sealed"
	entryEtcd     = "etcd.db"
	entrySums     = "SHA256SUMS"
)

// entryOrder is the entries of a snapshot file, in the order they are.
func entryOrder() []string { return []string{entryManifest, entryIdentity, entryEtcd, entrySums} }

// Kind is why a snapshot was taken; retention counts each kind on its own.
type Kind string

// The kinds of snapshot.
const (
	Scheduled  Kind = "scheduled"   // by the server's schedule
	OnDemand   Kind = "on-demand"   // by `monokube etcd-snapshot save`
	PreUpgrade Kind = "pre-upgrade" // by a server before a minor upgrade
)

// Kinds are all kinds, in the order ls and prune report them.
func Kinds() []Kind { return []Kind{Scheduled, OnDemand, PreUpgrade} }

// Manifest is what a snapshot file says about itself.
type Manifest struct {
	Format int    `json:"format"`
	Name   string `json:"name"`
	Kind   Kind   `json:"kind"`
	// Cluster is the fingerprint of the cluster's server CA certificate:
	// it stays the same across restores and cluster resets, unlike
	// etcd's cluster ID.
	Cluster       string    `json:"cluster"`
	EtcdClusterID string    `json:"etcdClusterID"`
	Revision      int64     `json:"revision"`
	Keys          int       `json:"keys"`
	Node          string    `json:"node"`
	Created       time.Time `json:"created"`
	Monokube      string    `json:"monokube"`
	Kubernetes    string    `json:"kubernetes"`
	EtcdStorage   string    `json:"etcdStorage"` // etcd's storage version of the data
	RecoveryKeyID string    `json:"recoveryKeyID"`
	EtcdSize      int64     `json:"etcdSize"`
	EtcdSHA256    string    `json:"etcdSHA256"` // of the etcd.db entry
}

// fileSHA256 hashes the open file f from its start, and leaves it at its
// start again.
func fileSHA256(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Fingerprint is the Cluster of a manifest for a server CA certificate
// (DER).
func Fingerprint(serverCADER []byte) string {
	sum := sha256.Sum256(serverCADER)
	return hex.EncodeToString(sum[:])
}

// writeFile writes a snapshot file to w: m (whose EtcdSize it sets), the
// identity sealed with key, the etcd snapshot db read from the file at
// dbPath, and the sums.
func writeFile(w io.Writer, m Manifest, identity []byte, key Key, dbPath string) error {
	db, err := os.Open(dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := db.Stat()
	if err != nil {
		return err
	}
	// The manifest, bound to the sealed identity, holds etcd.db's hash: a
	// file whose etcd data was swapped (and its sums rewritten) does not
	// open with the key.
	dbSum, err := fileSHA256(db)
	if err != nil {
		return err
	}
	m.Format, m.RecoveryKeyID, m.EtcdSize, m.EtcdSHA256 = formatVersion, key.ID(), st.Size(), dbSum
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	sealed, err := key.seal(identity, manifest)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	var sums bytes.Buffer
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: m.Created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(tw, h), r); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		fmt.Fprintf(&sums, "%x  %s\n", h.Sum(nil), name)
		return nil
	}
	if err := add(entryManifest, int64(len(manifest)), bytes.NewReader(manifest)); err != nil {
		return err
	}
	if err := add(entryIdentity, int64(len(sealed)), bytes.NewReader(sealed)); err != nil {
		return err
	}
	if err := add(entryEtcd, st.Size(), db); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: entrySums, Mode: 0o600, Size: int64(sums.Len()), ModTime: m.Created, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(sums.Bytes()); err != nil {
		return err
	}
	return tw.Close()
}

// Damaged is a snapshot file that a restore must not use. Truncated tells
// a file that ends early (an interrupted copy) from one whose bytes
// changed.
type Damaged struct {
	Path      string
	Truncated bool
	Why       string
}

func (d *Damaged) Error() string {
	if d.Truncated {
		return fmt.Sprintf("snapshot file %s is truncated (%s): it was not copied or written whole; copy it again or use another snapshot", d.Path, d.Why)
	}
	return fmt.Sprintf("snapshot file %s is damaged (%s): use another snapshot", d.Path, d.Why)
}

// contents is what reading a snapshot file found.
type contents struct {
	manifest    Manifest
	manifestRaw []byte
	sealed      []byte
	// sums are the SHA-256 of each entry as read (full reads only) and
	// listed (the SHA256SUMS entry).
	sums, listed map[string]string
}

// read walks the snapshot file at path. With full, it hashes every entry,
// checks them against SHA256SUMS and copies etcd.db to db (which may be
// io.Discard); without, it reads the manifest and skips the rest, which
// finds a file that ends early but not one whose bytes changed.
func read(path string, full bool, db io.Writer) (*contents, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	c := &contents{sums: map[string]string{}}
	// Without full, the tar reader seeks past etcd.db (the file is an
	// io.Seeker) and reads only its last byte, which still finds a file
	// that ends early.
	var r io.Reader = f
	if full {
		r = bufio.NewReaderSize(f, 1<<20)
	}
	tr := tar.NewReader(r)
	for i, want := range entryOrder() {
		hdr, err := tr.Next()
		if err != nil {
			return nil, readError(path, i, want, err)
		}
		if hdr.Name != want {
			if i == 0 {
				return nil, fmt.Errorf("%s is not a monokube snapshot file (its first entry is %q, not %s)", path, hdr.Name, entryManifest)
			}
			return nil, &Damaged{Path: path, Why: fmt.Sprintf("entry %d is %q, want %s", i+1, hdr.Name, want)}
		}
		if err := c.entry(tr, want, full, db); err != nil {
			return nil, readError(path, i, want, err)
		}
	}
	if full {
		if err := c.checkSums(path); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// entry reads one entry: the small ones always, etcd.db only when full.
func (c *contents) entry(r io.Reader, name string, full bool, db io.Writer) error {
	h := sha256.New()
	var buf bytes.Buffer
	var dst io.Writer = &buf
	switch {
	case name == entryEtcd && !full:
		return nil // the tar reader skips it
	case name == entryEtcd:
		dst = db
	}
	if _, err := io.Copy(io.MultiWriter(dst, h), r); err != nil {
		return err
	}
	c.sums[name] = hex.EncodeToString(h.Sum(nil))
	switch name {
	case entryManifest:
		c.manifestRaw = buf.Bytes()
		return json.Unmarshal(c.manifestRaw, &c.manifest)
	case entryIdentity:
		c.sealed = buf.Bytes()
	case entrySums:
		c.listed = parseSums(buf.String())
	}
	return nil
}

// readError says what reading entry i (want) of the file at path hit.
func readError(path string, i int, want string, err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &Damaged{Path: path, Truncated: true, Why: "it ends inside or before its " + want + " entry"}
	case errors.As(err, &syntax), i == 0 && errors.Is(err, tar.ErrHeader):
		if i == 0 {
			return fmt.Errorf("%s is not a monokube snapshot file (no readable %s): %w", path, entryManifest, err)
		}
		return &Damaged{Path: path, Why: fmt.Sprintf("its %s entry does not read: %v", want, err)}
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong):
		return &Damaged{Path: path, Why: fmt.Sprintf("the header of its %s entry does not read: %v", want, err)}
	}
	return fmt.Errorf("read snapshot %s (%s): %w", path, want, err)
}

// checkSums compares what a full read hashed with SHA256SUMS.
func (c *contents) checkSums(path string) error {
	for _, name := range entryOrder()[:len(entryOrder())-1] {
		if c.listed[name] != c.sums[name] {
			return &Damaged{Path: path, Why: "the SHA-256 of its " + name + " entry does not match " + entrySums}
		}
	}
	return nil
}

// parseSums reads SHA256SUMS: "HEX  NAME" lines.
func parseSums(s string) map[string]string {
	out := map[string]string{}
	for line := range strings.Lines(s) {
		if sum, name, ok := strings.Cut(strings.TrimSpace(line), "  "); ok {
			out[name] = sum
		}
	}
	return out
}

// checkFormat refuses a manifest this monokube cannot restore.
func checkFormat(path string, m Manifest) error {
	switch {
	case m.Format > formatVersion:
		return fmt.Errorf("snapshot file %s is of format %d, made by monokube %s; this monokube reads format %d: use that version or newer", path, m.Format, m.Monokube, formatVersion)
	case m.Format < 1, !slices.Contains(Kinds(), m.Kind):
		return &Damaged{Path: path, Why: "its manifest is incomplete"}
	}
	return nil
}
