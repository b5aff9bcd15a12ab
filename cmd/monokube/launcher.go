//go:build launcher

// Command monokube, as shipped: the launcher that unpacks the real binary
// (built from main.go without this tag) once per version and runs it. See
// internal/launcher.
package main

import (
	"fmt"
	"os"

	"github.com/monokube/monokube/embed/payload"
	"github.com/monokube/monokube/internal/launcher"
)

func main() {
	p := launcher.Payload{Zstd: payload.Binary(), SHA256: payload.SHA256()}
	err := launcher.Exec(p, os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "Error: %v\n", err) // as the real binary prints its errors
	os.Exit(1)
}
