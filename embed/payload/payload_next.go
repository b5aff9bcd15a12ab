//go:build launcher && next

package payload

import _ "embed" // for go:embed

// The e2e upgrade test's second binary (make next): the same code stamped
// with another version, in next/.

//go:embed next/monokube.zst
var binary []byte

//go:embed next/monokube.sha256
var sum string
