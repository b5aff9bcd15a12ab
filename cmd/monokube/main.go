//go:build !launcher

// Command monokube is a whole Kubernetes node in one binary. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/monokube/monokube/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts an orderly shutdown; restoring the default
	// handlers then lets a second one kill the process at once.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(cli.Run(ctx, os.Args, os.Stdout, os.Stderr))
}
