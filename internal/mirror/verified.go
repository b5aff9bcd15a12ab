package mirror

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/opencontainers/go-digest"
)

// Versioned is a Blob that can tell whether its content may have changed
// since it was last read: a file's identity and times. The handler hashes
// a blob whose version it has verified before only once, not at every
// request (containerd may fetch a large layer in many ranged requests).
type Versioned interface {
	Version() string
}

// maxVerified bounds the verified-blob cache; it is emptied when full.
const maxVerified = 4096

// verifiedBlobs remembers which version of each blob matched its digest.
type verifiedBlobs struct {
	mu sync.Mutex
	m  map[digest.Digest]string
}

// has reports whether b, if Versioned, was verified at its version.
func (v *verifiedBlobs) has(dgst digest.Digest, b Blob) bool {
	vb, ok := b.(Versioned)
	if !ok {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	have, ok := v.m[dgst]
	return ok && have == vb.Version()
}

// add records that b, if Versioned, matched dgst.
func (v *verifiedBlobs) add(dgst digest.Digest, b Blob) {
	vb, ok := b.(Versioned)
	if !ok {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVerified {
		v.m = map[digest.Digest]string{}
	}
	v.m[dgst] = vb.Version()
}

// fileBlob is a blob read from its file in containerd's content store.
type fileBlob struct {
	*os.File
	size    int64
	version string
}

var _ Versioned = fileBlob{}

// openFileBlob opens path and reads its identity: device, inode, size,
// and modification and change times (which any write moves).
func openFileBlob(path string) (fileBlob, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileBlob{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fileBlob{}, err
	}
	version := fmt.Sprintf("%d:%d", st.Size(), st.ModTime().UnixNano())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		version += fmt.Sprintf(":%d:%d:%d.%d", sys.Dev, sys.Ino, sys.Ctim.Sec, sys.Ctim.Nsec)
	}
	return fileBlob{File: f, size: st.Size(), version: version}, nil
}

// Size implements Blob.
func (b fileBlob) Size() int64 { return b.size }

// Version implements Versioned.
func (b fileBlob) Version() string { return b.version }
