// Package bundled embeds the build products the Makefile writes into this
// directory (gitignored; `make assets`, which `make build` runs, writes them):
//
//   - bin.tar.zst: one zstd-compressed tar of the helper binaries a node runs
//     as separate processes: runc, containerd-shim-runc-v2, the CNI plugins
//     (bridge, host-local, loopback, portmap, bandwidth) and crictl (for
//     `monokube crictl`); internal/assets.ExtractBin unpacks it.
//     bin.tar.zst.sha256 holds its digest.
//   - images/KEY.tar.zst: zstd-compressed docker-archive image tarballs
//     every node imports into containerd, so nothing is ever pulled, each
//     beside images/KEY.ref: the image's name (the Makefile is its one
//     source) on the first line, the archive's SHA-256 on the second. The
//     keys are the Image* constants.
//
// Import it with an alias: its directory name clashes with the standard
// library's embed package.
package bundled

import (
	"embed"
	"fmt"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// Keys of the embedded images.
const (
	ImagePause         = "pause"
	ImageCoreDNS       = "coredns"
	ImageMetricsServer = "metrics-server"
	ImageLocalPath     = "local-path-provisioner"
	ImageBusybox       = "busybox" // the shell of local-path's helper pods
)

// Each embedded blob is its own []byte variable, not an embed.FS file:
// the slice points into the binary's own data, so reading it costs no heap
// copy and Release can hand its pages back.
var (
	//go:embed bin.tar.zst
	binTar []byte
	//go:embed bin.tar.zst.sha256
	binTarSum string
	//go:embed images/pause.tar.zst
	pauseArchive []byte
	//go:embed images/coredns.tar.zst
	corednsArchive []byte
	//go:embed images/metrics-server.tar.zst
	metricsServerArchive []byte
	//go:embed images/local-path-provisioner.tar.zst
	localPathArchive []byte
	//go:embed images/busybox.tar.zst
	busyboxArchive []byte
	//go:embed images/*.ref
	refs embed.FS
)

// Blob is embedded data and the SHA-256 of it (hex) that the Makefile
// recorded, so nobody has to read the data to know its version.
type Blob struct {
	Data   []byte // the embedded data itself: callers must not modify it
	SHA256 string
}

// Release drops the blob's pages from this process's resident memory once
// it has been used (unpacked, imported); they are the binary's own file
// pages, so a later read simply faults them in again.
func (b Blob) Release() {
	page := os.Getpagesize()
	base := unsafe.Pointer(unsafe.SliceData(b.Data))
	start := int(uintptr(base) % uintptr(page))
	skip := 0
	if start != 0 {
		skip = page - start
	}
	n := (len(b.Data) - skip) / page * page
	if n <= 0 {
		return
	}
	_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, skip)), n), syscall.MADV_DONTNEED)
}

// BinTar returns the zstd-compressed tar of the helper binaries.
func BinTar() Blob { return Blob{Data: binTar, SHA256: strings.TrimSpace(binTarSum)} }

// Image is one embedded image.
type Image struct {
	Key     string // one of the Image* constants
	Ref     string // its name, e.g. monokube.local/pause:3.10
	Archive Blob   // the zstd-compressed docker-archive
}

// Images returns every embedded image, keyed by Image* constant. It fails
// only for a binary built without `make assets`.
func Images() (map[string]Image, error) {
	archives := map[string][]byte{
		ImagePause:         pauseArchive,
		ImageCoreDNS:       corednsArchive,
		ImageMetricsServer: metricsServerArchive,
		ImageLocalPath:     localPathArchive,
		ImageBusybox:       busyboxArchive,
	}
	out := make(map[string]Image, len(archives))
	for k, data := range archives {
		ref, err := refs.ReadFile("images/" + k + ".ref")
		if err != nil {
			return nil, fmt.Errorf("this binary has no embedded image %s: rebuild it with make: %w", k, err)
		}
		name, sum, _ := strings.Cut(strings.TrimSpace(string(ref)), "\n")
		if name == "" || len(sum) != 64 {
			return nil, fmt.Errorf("embedded images/%s.ref is not \"NAME\\nSHA256\": rebuild it with make", k)
		}
		out[k] = Image{Key: k, Ref: name, Archive: Blob{Data: data, SHA256: sum}}
	}
	return out, nil
}
