//go:build launcher && next

package payload

import (
	_ "embed" // for go:embed
	"strings"
)

// The e2e upgrade test's second binary (make next): the same code stamped
// with another version, in next/.

//go:embed next/monokube.zst
var binary []byte

//go:embed next/monokube.sha256
var sum string

// Binary returns the compressed binary; the slice is the embedded data
// itself: callers must not modify it.
func Binary() []byte { return binary }

// SHA256 returns the hex digest of the uncompressed binary.
func SHA256() string { return strings.TrimSpace(sum) }
