//go:build !launcher

// Command monokube is a whole Kubernetes node in one binary. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/monokube/monokube/internal/cli"
)

func main() {
	// Unless the user set GOGC, collect at 50% heap growth instead of Go's
	// 100%: a node with its addons then idles about 65 MiB smaller at the
	// same idle CPU (make bench, BenchmarkAddons). containerd, the same
	// binary, does the same.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts an orderly shutdown; restoring the default
	// handlers then lets a second one kill the process at once.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(cli.Run(ctx, os.Args, os.Stdout, os.Stderr))
}
