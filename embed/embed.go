// Package bundled embeds the build products the Makefile writes into this
// directory (gitignored; `make assets`, which `make build` runs, writes them):
//
//   - bin.tar.zst: one zstd-compressed tar of the helper binaries a node runs
//     as separate processes: runc, containerd-shim-runc-v2, the CNI plugins
//     (bridge, host-local, loopback, portmap, bandwidth) and crictl (for
//     `monokube crictl`); internal/assets.ExtractBin unpacks it.
//   - images/KEY.tar.zst: zstd-compressed docker-archive image tarballs
//     every node imports into containerd, so nothing is ever pulled, each
//     beside images/KEY.ref, the image's name (the Makefile is its one
//     source). The keys are the Image* constants.
//
// Import it with an alias: its directory name clashes with the standard
// library's embed package.
package bundled

import (
	"embed"
	"fmt"
	"strings"
)

// Keys of the embedded images.
const (
	ImagePause         = "pause"
	ImageCoreDNS       = "coredns"
	ImageMetricsServer = "metrics-server"
	ImageLocalPath     = "local-path-provisioner"
	ImageBusybox       = "busybox" // the shell of local-path's helper pods
)

// imageKeys lists every image the binary must carry.
var imageKeys = []string{ImagePause, ImageCoreDNS, ImageMetricsServer, ImageLocalPath, ImageBusybox}

//go:embed bin.tar.zst
var binTar []byte

//go:embed images/*.tar.zst images/*.ref
var images embed.FS

// BinTar returns the zstd-compressed tar of the helper binaries. The slice is
// the embedded data itself: callers must not modify it.
func BinTar() []byte { return binTar }

// Image is one embedded image.
type Image struct {
	Key     string // one of the Image* constants
	Ref     string // its name, e.g. monokube.local/pause:3.10
	Archive []byte // zstd-compressed docker-archive; the embedded data itself
}

// Images returns every embedded image, keyed by Image* constant. It fails
// only for a binary built without `make assets`.
func Images() (map[string]Image, error) {
	out := make(map[string]Image, len(imageKeys))
	for _, k := range imageKeys {
		ref, err := images.ReadFile("images/" + k + ".ref")
		if err != nil {
			return nil, fmt.Errorf("this binary has no embedded image %s: rebuild it with make: %w", k, err)
		}
		archive, err := images.ReadFile("images/" + k + ".tar.zst")
		if err != nil {
			return nil, fmt.Errorf("this binary has no embedded image %s: rebuild it with make: %w", k, err)
		}
		out[k] = Image{Key: k, Ref: strings.TrimSpace(string(ref)), Archive: archive}
	}
	return out, nil
}
