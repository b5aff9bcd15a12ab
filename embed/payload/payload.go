//go:build launcher

package payload

import "strings"

// Binary returns the compressed binary; the slice is the embedded data
// itself: callers must not modify it.
func Binary() []byte { return binary }

// SHA256 returns the hex digest of the uncompressed binary.
func SHA256() string { return strings.TrimSpace(sum) }
