package mirror

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/monokube/monokube/internal/containerd"
)

// Containerd is the Store of a node's containerd: the images and content
// of the namespace the kubelet's images live in.
type Containerd struct {
	Client *client.Client
	// Root is containerd's root directory. Blobs the namespace holds are
	// read from their files under it, as containerd's own content store
	// does (through its API, each read would be a call); "" reads them
	// through the API.
	Root string
}

var _ Store = Containerd{}

// Resolve implements Store.
func (c Containerd) Resolve(ctx context.Context, name string) (ocispec.Descriptor, error) {
	img, err := c.Client.ImageService().Get(namespaces.WithNamespace(ctx, containerd.Namespace), name)
	return img.Target, err
}

// Open implements Store.
func (c Containerd) Open(ctx context.Context, dgst digest.Digest) (Blob, error) {
	ctx = namespaces.WithNamespace(ctx, containerd.Namespace)
	if c.Root != "" {
		if _, err := c.Client.ContentStore().Info(ctx, dgst); err != nil {
			return nil, err // not in the namespace, or containerd is away
		}
		if b, err := openFileBlob(filepath.Join(c.Root, "io.containerd.content.v1.content", "blobs", dgst.Algorithm().String(), dgst.Encoded())); err == nil {
			return b, nil
		}
	}
	return c.Client.ContentStore().ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
}

// List implements Store.
func (c Containerd) List(ctx context.Context) ([]Image, error) {
	ctx = namespaces.WithNamespace(ctx, containerd.Namespace)
	imgs, err := c.Client.ImageService().List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		if _, err := digest.Parse(img.Name); err == nil {
			continue // the CRI's record of an image by its ID, which also has a name
		}
		complete, _, _, _, err := images.Check(ctx, c.Client.ContentStore(), img.Target, platforms.Default())
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		out = append(out, Image{Name: img.Name, Digest: img.Target.Digest, Complete: complete})
	}
	return out, nil
}
