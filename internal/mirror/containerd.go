package mirror

import (
	"context"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/monokube/monokube/internal/containerd"
)

// Containerd is the Store of a node's containerd: the images and content
// of the namespace the kubelet's images live in.
type Containerd struct{ Client *client.Client }

var _ Store = Containerd{}

// Resolve implements Store.
func (c Containerd) Resolve(ctx context.Context, name string) (ocispec.Descriptor, error) {
	img, err := c.Client.ImageService().Get(namespaces.WithNamespace(ctx, containerd.Namespace), name)
	return img.Target, err
}

// Open implements Store.
func (c Containerd) Open(ctx context.Context, dgst digest.Digest) (Blob, error) {
	return c.Client.ContentStore().ReaderAt(namespaces.WithNamespace(ctx, containerd.Namespace), ocispec.Descriptor{Digest: dgst})
}
