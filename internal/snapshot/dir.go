package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/monokube/monokube/internal/fsutil"
)

// partialSuffix ends the hidden names of files being written.
const partialSuffix = ".partial"

func isPartial(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, partialSuffix)
}

// staleAge is how old a partial file must be before a Save removes it: a
// Save of this age has been killed, not slowed.
const staleAge = time.Hour

// Dir is a directory of snapshot files (--etcd-snapshot-dir).
type Dir struct{ Path string }

// Entry is one snapshot file of a Dir, as List found it.
type Entry struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Kind     Kind      `json:"kind"`
	Node     string    `json:"node"`
	Created  time.Time `json:"created"`
	Size     int64     `json:"size"`
	Revision int64     `json:"revision"`
	// Status is "ok", or "damaged: why" for a file that a restore
	// refuses (retention neither counts nor deletes those).
	Status string `json:"status"`
}

// OK is whether the entry's file is whole.
func (e Entry) OK() bool { return e.Status == "ok" }

// Taken is what Save needs besides etcd's data.
type Taken struct {
	Manifest Manifest // Name, Kind, Cluster, Node, versions; Save fills the rest
	Identity []byte   // an encoded identity.Bundle
	Key      Key
}

// Save writes a snapshot file named t.Manifest.Name: etcd's data from
// src to a hidden file, checked, then the snapshot file beside it,
// fsynced and checked, then linked into place (never over another file).
// Any failure (a full disk) leaves no file that List shows; the error
// says what failed.
func (d Dir) Save(src Source, t Taken) (Entry, error) {
	if err := checkName(t.Manifest.Name); err != nil {
		return Entry{}, err
	}
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return Entry{}, fmt.Errorf("snapshot dir: %w", err)
	}
	removeStale(d.Path, staleAge)
	final := filepath.Join(d.Path, t.Manifest.Name+Ext)
	if fsutil.Exists(final) {
		return Entry{}, fmt.Errorf("snapshot %s exists already: give another --name", final)
	}
	db, err := createSynced(d.Path, "."+t.Manifest.Name+".*.db"+partialSuffix, src)
	if err != nil {
		return Entry{}, fmt.Errorf("take etcd's snapshot into %s: %w%s", d.Path, err, roomHint(err))
	}
	defer os.Remove(db)
	info, err := checkDB(db)
	if err != nil {
		return Entry{}, fmt.Errorf("etcd's snapshot, as taken, does not check: %w", err)
	}
	m := t.Manifest
	m.Revision, m.Keys, m.EtcdStorage = info.Revision, info.Keys, info.Storage
	tmp, err := createSynced(d.Path, "."+t.Manifest.Name+".*"+partialSuffix, func(w io.Writer) error { return writeFile(w, m, t.Identity, t.Key, db) })
	if err != nil {
		return Entry{}, fmt.Errorf("write snapshot file in %s: %w%s", d.Path, err, roomHint(err))
	}
	defer os.Remove(tmp)
	if _, err := read(tmp, true, io.Discard); err != nil {
		return Entry{}, fmt.Errorf("snapshot file as written does not check: %w", err)
	}
	return d.place(tmp, final)
}

// place links the checked file tmp to its name final, refusing to replace
// a file of that name (a second save in the same second), and makes the
// name durable.
func (d Dir) place(tmp, final string) (Entry, error) {
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, os.ErrExist) {
			return Entry{}, fmt.Errorf("snapshot %s exists already: give another --name", final)
		}
		return Entry{}, fmt.Errorf("name the snapshot file: %w", err)
	}
	if err := fsutil.SyncDir(d.Path); err != nil {
		return Entry{}, fmt.Errorf("name the snapshot file: %w", err)
	}
	return entry(final), nil
}

// roomHint is what to do about a full disk.
func roomHint(err error) string {
	if errors.Is(err, syscall.ENOSPC) {
		return " (make room there, or keep snapshots elsewhere with --etcd-snapshot-dir)"
	}
	return ""
}

// checkName refuses a snapshot name that is not a plain file name.
func checkName(name string) error {
	valid := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	if !valid.MatchString(name) || len(name) > 200 {
		return fmt.Errorf("snapshot name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// List is every snapshot file of the directory, oldest first; a missing
// directory has none.
func (d Dir) List() ([]Entry, error) {
	files, err := filepath.Glob(filepath.Join(d.Path, "*"+Ext))
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(files))
	for _, f := range files {
		out = append(out, entry(f))
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Name, b.Name))
	})
	return out, nil
}

// entry describes the file at path from its manifest, or from the file
// system when the file is damaged.
func entry(path string) Entry {
	e := Entry{Name: strings.TrimSuffix(filepath.Base(path), Ext), Path: path, Status: "ok"}
	if st, err := os.Stat(path); err == nil {
		e.Size, e.Created = st.Size(), st.ModTime().UTC()
	}
	m, err := Inspect(path)
	if err != nil {
		e.Status = "damaged: " + reason(err)
		return e
	}
	e.Kind, e.Node, e.Created, e.Revision = m.Kind, m.Node, m.Created, m.Revision
	return e
}

// reason is a short why for a listing.
func reason(err error) string {
	var d *Damaged
	if errors.As(err, &d) {
		if d.Truncated {
			return "truncated"
		}
		return d.Why
	}
	return err.Error()
}

// Delete removes the named snapshots (NAME or NAME.snapshot.tar) of the
// directory; a name that is not there is an error, after the others are
// removed.
func (d Dir) Delete(names ...string) ([]string, error) {
	var deleted []string
	var errs []error
	for _, n := range names {
		n = strings.TrimSuffix(filepath.Base(n), Ext)
		path := filepath.Join(d.Path, n+Ext)
		if err := os.Remove(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err = fmt.Errorf("no snapshot %s in %s (`monokube etcd-snapshot ls` lists them)", n, d.Path)
			}
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, n)
	}
	return deleted, errors.Join(errs...)
}

// Prune deletes the good snapshots of kind taken on node (any node: "")
// beyond the keep newest ones; a server prunes only its own, so servers
// that share a directory each keep theirs. Damaged files neither count
// nor go: a run of failures never deletes the last good snapshot, and a
// damaged file stays for someone to look at.
func (d Dir) Prune(kind Kind, node string, keep int) ([]string, error) {
	all, err := d.List()
	if err != nil {
		return nil, err
	}
	var good []Entry
	for _, e := range all {
		if e.OK() && e.Kind == kind && (node == "" || e.Node == node) {
			good = append(good, e)
		}
	}
	if len(good) <= keep {
		return nil, nil
	}
	var names []string
	for _, e := range good[:len(good)-keep] { // oldest first
		names = append(names, e.Name)
	}
	return d.Delete(names...)
}
