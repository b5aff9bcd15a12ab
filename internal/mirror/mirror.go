// Package mirror serves the images a node's containerd holds to the other
// nodes of its cluster: a read-only OCI distribution endpoint (GET and
// HEAD of manifests and blobs, nothing else) that each node's containerd
// names as a mirror in its registry hosts configuration, so that an image
// imported on one node can be pulled by every other.
//
// containerd tries the hosts it is given in order and goes on to the next
// after a 404 or a connection error, so a node never needs to know which
// peer holds what. It does not go on when a blob it was sent fails its
// digest check (the pull fails), so the handler hashes every blob before
// it sends a byte of it and answers 404 for one that does not match: a
// tampered copy on one node sends containerd to the next, and containerd
// still checks the digest of what it stores.
package mirror

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is what the handler serves from: a node's containerd (Containerd),
// or a fake in tests.
type Store interface {
	// Resolve is the descriptor the image name (a full reference with a
	// tag, such as docker.io/library/nginx:1.27) points at; an error that
	// errdefs.IsNotFound if the node holds no such image.
	Resolve(ctx context.Context, name string) (ocispec.Descriptor, error)
	// Open opens the content of dgst; an error that errdefs.IsNotFound if
	// the node does not hold it.
	Open(ctx context.Context, dgst digest.Digest) (Blob, error)
	// List is every image the node holds.
	List(ctx context.Context) ([]Image, error)
}

// Image is an image a node holds, as its mirror lists it (ImagesPath).
type Image struct {
	Name   string        `json:"name"`
	Digest digest.Digest `json:"digest"`
	// Complete is whether the node holds every blob of the image for its
	// own platform: it can run it, and serve it whole.
	Complete bool `json:"complete"`
}

// Blob is content opened in a Store (containerd's content.ReaderAt is one).
type Blob interface {
	io.ReaderAt
	io.Closer
	Size() int64
}
