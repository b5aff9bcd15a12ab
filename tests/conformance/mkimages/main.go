// Command mkimages writes the images the Kubernetes [Conformance] tests run,
// under the exact names the e2e framework expects (test/utils/image/manifest.go),
// as one docker-archive that monokube imports from <data-dir>/agent/images/.
// Nothing is pulled: the programs are built from the pinned modules by the
// Makefile, and the root filesystem they share is a Debian tree made by
// mmdebstrap (tests/conformance/rootfs.sh).
//
//	mkimages -o images.tar -rootfs rootfs.tar -bin DIR -files DIR
//
// DIR (-bin) holds agnhost, nnp, sample-apiserver, etcd, coredns, pause and
// upstream busybox (tests/conformance/busybox.sh);
// DIR (-files) is k8s.io/kubernetes/test/images in the module cache, for the
// few data files the real images carry (agnhost's porter certificate, the
// kitten and nautilus pages).
//
// The busybox image is upstream busybox alone, as the real one. The Debian
// tree stands in for the Alpine base of agnhost, nginx and the others, with
// upstream busybox as /bin/sh and as every command Debian lacks, as on
// Alpine; where tests depend on the base it behaves like the real images:
// OpenBSD nc, curl, dig, wget, and an ash that keeps environment variables
// whose names are not shell identifiers (envFrom keys like "data-1"), which
// Debian's patched busybox and dash drop. The images share the Debian layer,
// so the archive holds it once.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/monokube/monokube/scripts/mkimage/archive"
)

// options are the command-line flags.
type options struct {
	out, rootfs, bin, files string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	b, err := newBuilder(o)
	if err != nil {
		return err
	}
	imgs := map[name.Tag]v1.Image{}
	for _, spec := range catalogue() {
		img, err := b.build(spec)
		if err != nil {
			return fmt.Errorf("image %s: %w", spec.names[0], err)
		}
		for _, n := range spec.names {
			tag, err := name.NewTag(n, name.StrictValidation)
			if err != nil {
				return fmt.Errorf("image name %q: %w", n, err)
			}
			imgs[tag] = img
		}
	}
	if err := archive.Write(o.out, imgs); err != nil {
		return err
	}
	names := make([]string, 0, len(imgs))
	for t := range imgs {
		names = append(names, t.String())
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Println(n)
	}
	return nil
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("mkimages", flag.ContinueOnError)
	fs.StringVar(&o.out, "o", "", "output docker-archive (required)")
	fs.StringVar(&o.rootfs, "rootfs", "", "the shared Debian root filesystem, a tar (required)")
	fs.StringVar(&o.bin, "bin", "", "directory of the programs the images run (required)")
	fs.StringVar(&o.files, "files", "", "k8s.io/kubernetes/test/images, for the images' data files (required)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	for flagName, v := range map[string]string{"o": o.out, "rootfs": o.rootfs, "bin": o.bin, "files": o.files} {
		if v == "" {
			errs = append(errs, fmt.Errorf("-%s is required", flagName))
		}
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	return o, errors.Join(errs...)
}
