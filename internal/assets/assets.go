// Package assets unpacks what monokube carries inside its binary: the helper
// binaries (runc, containerd-shim-runc-v2, CNI plugins, crictl), extracted once per
// content hash under the data dir, and the names of the embedded image
// tarballs. The bytes come from package bundled (embed/); this package only
// reads them, so it is tested with archives built in the tests.
package assets

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ImageName returns the first RepoTag of a docker-archive image tarball (as
// written by scripts/mkimage), e.g. "monokube.local/pause:3.10". The Makefile
// names each image once; monokube reads the name back from here.
func ImageName(archive []byte) (string, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(archive)), nil
	})
	if err != nil {
		return "", fmt.Errorf("read manifest.json of image tarball: %w", err)
	}
	for _, d := range m {
		if len(d.RepoTags) > 0 {
			return d.RepoTags[0], nil
		}
	}
	return "", errors.New("image tarball has no RepoTags in manifest.json; build it with scripts/mkimage -name REPO:TAG")
}
