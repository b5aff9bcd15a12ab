//go:build launcher && !next

package payload

import _ "embed" // for go:embed

//go:embed monokube.zst
var binary []byte

//go:embed monokube.sha256
var sum string
