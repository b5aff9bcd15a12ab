package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/klauspost/compress/zstd"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/lifecycle"
)

// Labels the CRI plugin reads: a managed image is visible to the kubelet,
// a pinned one is never garbage-collected or removed by it.
var (
	managedLabels = map[string]string{"io.cri-containerd.image": "managed"}                                       //nolint:gochecknoglobals // fixed table
	pinnedLabels  = map[string]string{"io.cri-containerd.image": "managed", "io.cri-containerd.pinned": "pinned"} //nolint:gochecknoglobals // fixed table
)

// Images imports the node's images once containerd is up: the embedded
// ones (pinned) and the user's tarballs in Dir, skipping tarballs already
// imported unchanged. A tarball that cannot be imported is reported and
// skipped; it never stops the node.
type Images struct {
	ImageSources
	log *slog.Logger
}

// ImageSources says where images come from and where they go.
type ImageSources struct {
	Address     string          // containerd's socket
	Snapshotter string          // the CRI's snapshotter, to unpack for
	Embedded    []EmbeddedImage // imported pinned
	Dir         string          // <data-dir>/agent/images
	StateFile   string          // what was imported from Dir, to skip it next time
}

// EmbeddedImage is an image the binary carries.
type EmbeddedImage struct {
	Ref     string // its name, e.g. monokube.local/pause:3.10
	SHA256  string // of Archive, hex
	Archive []byte // a zstd-compressed docker-archive
	Release func() // called once Archive is no longer needed
}

// archiveLabel records on an embedded image the digest of the archive it
// came from, so an unchanged one is not imported again at the next start.
const archiveLabel = "monokube.io/archive-sha256"

// NewImages returns the image import task.
func NewImages(src ImageSources, log *slog.Logger) *Images {
	return &Images{ImageSources: src, log: log}
}

var _ lifecycle.Task = (*Images)(nil)

// Name implements lifecycle.Task.
func (*Images) Name() string { return "image-import" }

// Do implements lifecycle.Task: it imports every embedded image and every
// tarball in the images dir that containerd does not hold yet.
func (im *Images) Do(ctx context.Context) error { return im.importAll(ctx) }

func (im *Images) importAll(ctx context.Context) error {
	c, err := client.New(im.Address, client.WithDefaultNamespace(Namespace))
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", im.Address, err)
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, Namespace)
	imported := false
	for _, e := range im.Embedded {
		done, err := im.importEmbedded(ctx, c, e)
		if err != nil {
			return fmt.Errorf("import embedded image %s: %w", e.Ref, err)
		}
		imported = imported || done
	}
	if imported {
		// Decompressing took a window-sized buffer per image (up to
		// ~100 MiB); hand it back now rather than idle with it.
		debug.FreeOSMemory()
	}
	return im.importDir(ctx, c)
}

// importEmbedded imports e unless containerd already holds the image from
// this very archive; it reports whether it imported.
func (im *Images) importEmbedded(ctx context.Context, c *client.Client, e EmbeddedImage) (bool, error) {
	if img, err := c.ImageService().Get(ctx, e.Ref); err == nil && img.Labels[archiveLabel] == e.SHA256 {
		return false, nil
	}
	defer e.Release()
	zr, err := zstd.NewReader(bytes.NewReader(e.Archive), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return false, err
	}
	defer zr.Close()
	labels := maps.Clone(pinnedLabels)
	labels[archiveLabel] = e.SHA256
	start := time.Now()
	if _, err := im.importOne(ctx, c, zr, labels); err != nil {
		return false, err
	}
	im.log.Info("imported embedded image", "image", e.Ref, "took", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// importDir imports the user's tarballs, skipping unchanged ones.
func (im *Images) importDir(ctx context.Context, c *client.Client) error {
	entries, err := os.ReadDir(im.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read images directory: %w", err)
	}
	seen := map[string]string{}
	fsutil.LoadState(im.StateFile, &seen)
	next := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || !isTarball(e.Name()) {
			continue
		}
		path := filepath.Join(im.Dir, e.Name())
		key, err := fileKey(path)
		if err != nil {
			im.log.Warn("skipping image tarball", "file", path, "err", err)
			continue
		}
		if seen[e.Name()] == key {
			next[e.Name()] = key
			continue
		}
		names, err := im.importFile(ctx, c, path)
		if err != nil {
			im.log.Error("skipping image tarball that cannot be imported; replace or remove it", "file", path, "err", err)
			continue
		}
		im.log.Info("imported image tarball", "file", path, "images", names)
		next[e.Name()] = key
	}
	return fsutil.SaveState(im.StateFile, next)
}

func (im *Images) importFile(ctx context.Context, c *client.Client, path string) ([]string, error) {
	return im.importPath(ctx, c, path, managedLabels)
}

func (im *Images) importPath(ctx context.Context, c *client.Client, path string, labels map[string]string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return im.importOne(ctx, c, f, labels)
}

// importOne imports one tarball, unpacks it for the CRI's snapshotter and
// returns the image names.
func (im *Images) importOne(ctx context.Context, c *client.Client, r io.Reader, labels map[string]string) ([]string, error) {
	imgs, err := c.Import(ctx, r, client.WithImageLabels(labels),
		client.WithImportPlatform(platforms.Default()), client.WithSkipDigestRef(func(string) bool { return true }))
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, errors.New("the tarball holds no tagged image")
	}
	var names []string
	for _, img := range imgs {
		if err := client.NewImage(c, img).Unpack(ctx, im.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", img.Name, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

func isTarball(name string) bool {
	for _, ext := range []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// fileKey identifies a tarball's version cheaply: size and modification time.
func fileKey(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d@%d", fi.Size(), fi.ModTime().UnixNano()), nil
}
