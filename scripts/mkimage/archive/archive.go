// Package archive writes container images as one docker-archive tarball,
// the format `ctr images import` and monokube's image import read, for the
// image builders (scripts/mkimage, tests/conformance/mkimages).
package archive

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Write writes imgs (layers they share stored once) beside out and renames
// the file into place, so an interrupted build never leaves a truncated
// tarball that make would consider up to date.
func Write(out string, imgs map[name.Tag]v1.Image) error {
	tmp := out + ".tmp"
	if err := tarball.MultiWriteToFile(tmp, imgs); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
