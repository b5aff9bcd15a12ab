package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the fixed time of every file and config the builder writes.
func epoch() time.Time { return time.Unix(0, 0).UTC() }

// builder makes images from specs; images built earlier can be parents.
type builder struct {
	o       options
	rootfs  []byte           // the Debian tree's tar
	applets []string         // what the busybox in -bin provides
	built   map[string]built // by first name, plus the bases
}

// built is an image and whether the Debian tree is below it (where /bin
// is a symlink into /usr).
type built struct {
	img    v1.Image
	debian bool
}

func newBuilder(o options) (*builder, error) {
	rootfs, err := os.ReadFile(o.rootfs)
	if err != nil {
		return nil, fmt.Errorf("read the root filesystem (tests/conformance/rootfs.sh makes it): %w", err)
	}
	applets, err := busyboxApplets(filepath.Join(o.bin, "busybox"))
	if err != nil {
		return nil, err
	}
	b := &builder{o: o, rootfs: rootfs, applets: applets, built: map[string]built{scratch: {img: empty.Image}}}
	base, err := appendLayer(empty.Image, rootfs, "debian root filesystem (mmdebstrap)")
	if err != nil {
		return nil, err
	}
	b.built[debian] = built{img: base, debian: true}
	missing, err := b.missingApplets()
	if err != nil {
		return nil, err
	}
	if _, err := b.build(alpineLike(missing)); err != nil {
		return nil, fmt.Errorf("the busybox layer: %w", err)
	}
	return b, nil
}

func (b *builder) build(spec imageSpec) (v1.Image, error) {
	parent, ok := b.built[spec.from]
	if !ok {
		return nil, fmt.Errorf("parent %s is not listed before it", spec.from)
	}
	entries := spec.entries
	if spec.applets != "" {
		entries = append(append([]entry(nil), entries...), appletLinks(spec.applets, b.applets, entries)...)
	}
	img := parent.img
	if len(entries) > 0 {
		layer, err := b.layer(entries, parent.debian)
		if err != nil {
			return nil, err
		}
		if img, err = appendLayer(img, layer, "mkimages "+spec.names[0]); err != nil {
			return nil, err
		}
	}
	img, err := configure(img, spec)
	if err != nil {
		return nil, err
	}
	b.built[spec.names[0]] = built{img: img, debian: parent.debian}
	return img, nil
}

func appendLayer(parent v1.Image, layer []byte, createdBy string) (v1.Image, error) {
	img, err := mutate.Append(parent, mutate.Addendum{
		Layer:   static.NewLayer(layer, types.DockerUncompressedLayer),
		History: v1.History{Created: v1.Time{Time: epoch()}, CreatedBy: createdBy},
	})
	if err != nil {
		return nil, fmt.Errorf("add layer: %w", err)
	}
	return img, nil
}

// configure sets the image config from spec; entrypoint and cmd inherit
// from the parent unless spec sets them, as in a Dockerfile.
func configure(img v1.Image, spec imageSpec) (v1.Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: epoch()}
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if spec.entrypoint != nil {
		cfg.Config.Entrypoint = spec.entrypoint
	}
	if spec.cmd != nil {
		cfg.Config.Cmd = spec.cmd
	}
	if spec.user != "" {
		cfg.Config.User = spec.user
	}
	if spec.stopSignal != "" {
		cfg.Config.StopSignal = spec.stopSignal
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// layer returns the uncompressed tar of entries, sorted by path, each
// parent directory first.
func (b *builder) layer(entries []entry, usrMerged bool) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, e := range entries {
		if err := writeParents(tw, dirs, path.Dir(e.path), usrMerged); err != nil {
			return nil, err
		}
		if err := b.writeEntry(tw, e); err != nil {
			return nil, fmt.Errorf("%s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finish layer: %w", err)
	}
	return buf.Bytes(), nil
}

// writeParents writes dir and its parents not written yet, outermost first.
// In the Debian tree (usrMerged) /bin, /sbin and /lib are symlinks into
// /usr: a layer must never turn them into directories.
func writeParents(tw *tar.Writer, written map[string]bool, dir string, usrMerged bool) error {
	if dir == "/" || written[dir] {
		return nil
	}
	switch strings.SplitN(strings.TrimPrefix(dir, "/"), "/", 2)[0] {
	case "bin", "sbin", "lib", "lib64":
		if usrMerged {
			return fmt.Errorf("%s is a symlink in the Debian tree; use the /usr path", dir)
		}
	}
	if err := writeParents(tw, written, path.Dir(dir), usrMerged); err != nil {
		return err
	}
	written[dir] = true
	return tw.WriteHeader(header(tar.TypeDir, dir+"/", 0o755, 0))
}

func (b *builder) writeEntry(tw *tar.Writer, e entry) error {
	switch {
	case e.link != "":
		h := header(tar.TypeSymlink, e.path, 0o777, 0)
		h.Linkname = e.link
		return tw.WriteHeader(h)
	case e.dir:
		return tw.WriteHeader(header(tar.TypeDir, e.path+"/", e.mode, 0))
	}
	data, err := b.content(e)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(header(tar.TypeReg, e.path, e.mode, int64(len(data)))); err != nil {
		return err
	}
	_, err = tw.Write(data)
	return err
}

func (b *builder) content(e entry) ([]byte, error) {
	switch {
	case e.bin != "":
		return os.ReadFile(filepath.Join(b.o.bin, e.bin))
	case e.file != "":
		return os.ReadFile(filepath.Join(b.o.files, e.file))
	case e.extend:
		base, err := b.rootfsFile(e.path)
		return append(base, e.text...), err
	}
	return []byte(e.text), nil
}

// rootfsFile returns the content of a regular file of the Debian tree.
func (b *builder) rootfsFile(p string) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(b.rootfs))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s is not in the root filesystem", p)
		}
		if err != nil {
			return nil, fmt.Errorf("read the root filesystem: %w", err)
		}
		if path.Clean("/"+h.Name) == p && h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err == nil && len(data) > 0 && data[len(data)-1] != '\n' {
				data = append(data, '\n')
			}
			return data, err
		}
	}
}

func header(typ byte, p string, mode, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     strings.TrimPrefix(p, "/"),
		Size:     size,
		Mode:     mode,
		ModTime:  epoch(),
		Format:   tar.FormatPAX,
	}
}
