// Command mkimage builds a single-layer container image from local files and
// writes it as a docker-archive tarball (what `ctr images import` and
// containerd's client.Import read), so monokube's images are made at build
// time and never pulled. It uses go-containerregistry for the image config,
// manifest and archive; only the layer's own tar is written here.
//
//	mkimage -o out.tar -name monokube.local/pause:3.10 -entrypoint /pause \
//		-file build/pause/pause:/pause [-file SRC:DST ...] [-link PATH:TARGET ...] \
//		[-dir /tmp ...] [-cmd ARG ...]
//
// Files are stored with mode 0755, owned by root; -dir adds an empty
// directory (mode 1777, for scratch space such as /tmp). The layer is stored
// uncompressed: the Makefile compresses whole archives with zstd, which packs
// far better than a gzip layer inside them. Every timestamp is fixed, so the
// same inputs give a byte-identical tarball.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/monokube/monokube/scripts/mkimage/archive"
)

// epoch is the fixed time of every file, layer and config in the image.
func epoch() time.Time { return time.Unix(0, 0).UTC() }

// options are the command-line flags.
type options struct {
	out        string
	name       string
	arch       string
	entrypoint stringList
	cmd        stringList
	files      stringList
	links      stringList
	dirs       stringList
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// file is one entry of the layer: its absolute path in the image and either
// the host file it copies (src), the target of a symbolic link (link), or
// neither for an empty scratch directory.
type file struct {
	src, dst, link string
	dir            bool
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	files, err := parseEntries(o)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(o.name, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name %q (want REGISTRY/REPO:TAG): %w", o.name, err)
	}
	img, err := buildImage(o, files)
	if err != nil {
		return err
	}
	return archive.Write(o.out, map[name.Tag]v1.Image{tag: img})
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.StringVar(&o.out, "o", "", "output docker-archive tarball (required)")
	fs.StringVar(&o.name, "name", "", "image name with tag, e.g. monokube.local/pause:3.10 (required)")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "image architecture")
	fs.Var(&o.entrypoint, "entrypoint", "entrypoint element (repeatable)")
	fs.Var(&o.cmd, "cmd", "cmd element (repeatable)")
	fs.Var(&o.files, "file", "SRC:DST, a host file and its absolute path in the image (repeatable)")
	fs.Var(&o.links, "link", "PATH:TARGET, a symbolic link in the image (repeatable)")
	fs.Var(&o.dirs, "dir", "an empty, world-writable directory in the image, e.g. /tmp (repeatable)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if o.out == "" {
		errs = append(errs, errors.New("-o is required"))
	}
	if o.name == "" {
		errs = append(errs, errors.New("-name is required"))
	}
	if len(o.files)+len(o.links)+len(o.dirs) == 0 {
		errs = append(errs, errors.New("at least one -file SRC:DST, -link or -dir is required"))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	return o, errors.Join(errs...)
}

// parseEntries turns the -file, -link and -dir flags into layer entries
// sorted by path, so the layer does not depend on flag order.
func parseEntries(o options) ([]file, error) {
	var files []file
	seen := map[string]bool{}
	add := func(flag, spec string, f file) error {
		f.dst = path.Clean(f.dst)
		if !path.IsAbs(f.dst) || f.dst == "/" {
			return fmt.Errorf("-%s %q: the path in the image must be absolute", flag, spec)
		}
		if seen[f.dst] {
			return fmt.Errorf("-%s %q: %s given twice", flag, spec, f.dst)
		}
		seen[f.dst] = true
		files = append(files, f)
		return nil
	}
	for _, s := range o.files {
		src, dst, ok := strings.Cut(s, ":")
		if !ok || src == "" {
			return nil, fmt.Errorf("-file %q: want SRC:DST", s)
		}
		if err := add("file", s, file{src: src, dst: dst}); err != nil {
			return nil, err
		}
	}
	for _, s := range o.links {
		dst, target, ok := strings.Cut(s, ":")
		if !ok || target == "" {
			return nil, fmt.Errorf("-link %q: want PATH:TARGET", s)
		}
		if err := add("link", s, file{dst: dst, link: target}); err != nil {
			return nil, err
		}
	}
	for _, s := range o.dirs {
		if err := add("dir", s, file{dst: s, dir: true}); err != nil {
			return nil, err
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].dst < files[j].dst })
	return files, nil
}

func buildImage(o options, files []file) (v1.Image, error) {
	layerTar, err := layerTar(files)
	if err != nil {
		return nil, err
	}
	layer := static.NewLayer(layerTar, types.DockerUncompressedLayer)
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: epoch()}, CreatedBy: "mkimage"},
	})
	if err != nil {
		return nil, fmt.Errorf("add layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: epoch()}
	cfg.OS = "linux"
	cfg.Architecture = o.arch
	cfg.Config.Entrypoint = o.entrypoint
	cfg.Config.Cmd = o.cmd
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// layerTar returns the uncompressed layer: the parent directories, then the
// files, all root-owned with mode 0755 and the fixed timestamp.
func layerTar(files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		if err := writeParents(tw, dirs, path.Dir(f.dst)); err != nil {
			return nil, err
		}
		if err := writeEntry(tw, f); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finish layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// writeParents writes a directory entry for dir and each of its parents not
// written yet, outermost first.
func writeParents(tw *tar.Writer, written map[string]bool, dir string) error {
	if dir == "/" || written[dir] {
		return nil
	}
	if err := writeParents(tw, written, path.Dir(dir)); err != nil {
		return err
	}
	written[dir] = true
	return tw.WriteHeader(header(tar.TypeDir, strings.TrimPrefix(dir, "/")+"/", 0))
}

func writeEntry(tw *tar.Writer, f file) error {
	if f.dir {
		h := header(tar.TypeDir, strings.TrimPrefix(f.dst, "/")+"/", 0)
		h.Mode = 0o1777
		return tw.WriteHeader(h)
	}
	if f.link != "" {
		h := header(tar.TypeSymlink, strings.TrimPrefix(f.dst, "/"), 0)
		h.Linkname = f.link
		return tw.WriteHeader(h)
	}
	data, err := os.ReadFile(f.src)
	if err != nil {
		return fmt.Errorf("read -file %s: %w", f.src, err)
	}
	if err := tw.WriteHeader(header(tar.TypeReg, strings.TrimPrefix(f.dst, "/"), int64(len(data)))); err != nil {
		return fmt.Errorf("add %s to layer: %w", f.dst, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("add %s to layer: %w", f.dst, err)
	}
	return nil
}

func header(typ byte, name string, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Size:     size,
		Mode:     0o755,
		ModTime:  epoch(),
		Format:   tar.FormatUSTAR,
	}
}
