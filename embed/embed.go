// Package bundled embeds the build products the Makefile writes into this
// directory (gitignored; `make assets`, which `make build` runs, writes them):
//
//   - bin.tar.zst: one zstd-compressed tar of the helper binaries a node runs
//     as separate processes: runc, containerd-shim-runc-v2, the CNI plugins
//     (bridge, host-local, loopback, portmap, bandwidth) and crictl (for
//     `monokube crictl`); internal/assets.ExtractBin unpacks it.
//   - images/*.tar: docker-archive image tarballs every node imports into
//     containerd, so nothing is ever pulled: pause.tar, whose image name
//     internal/assets.ImageName reads back (the Makefile's PAUSE_IMAGE is its
//     one source).
//
// Import it with an alias: its directory name clashes with the standard
// library's embed package.
package bundled

import (
	"embed"
	"io/fs"
)

// PauseImageFile is the pause image's tarball in Images.
const PauseImageFile = "pause.tar"

//go:embed bin.tar.zst
var binTar []byte

//go:embed images/*.tar
var images embed.FS

// BinTar returns the zstd-compressed tar of the helper binaries. The slice is
// the embedded data itself: callers must not modify it.
func BinTar() []byte { return binTar }

// Images returns the embedded image tarballs, by file name (PauseImageFile).
func Images() fs.FS {
	sub, err := fs.Sub(images, "images")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "images" is valid.
		panic("bundled: " + err.Error())
	}
	return sub
}
