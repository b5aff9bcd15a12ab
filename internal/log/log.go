// Package log builds monokube's single structured log stream (log/slog on
// stderr) and bridges the loggers of embedded components into it: klog (all
// Kubernetes components) and zap (etcd).
//
// Only main-level code (the cli package) calls Setup and Klog, because they
// configure process-wide logger state; everything else receives a *slog.Logger.
package log

import (
	"flag"
	"io"
	"log/slog"
	"strconv"

	"k8s.io/klog/v2"
)

// Options selects the output format and verbosity.
type Options struct {
	Debug bool // debug level, and klog verbosity 2
	JSON  bool // JSON lines instead of logfmt-style text
}

// Setup returns the root logger writing to w.
func Setup(w io.Writer, opts Options) *slog.Logger {
	level := slog.LevelInfo
	if opts.Debug {
		level = slog.LevelDebug
	}
	ho := &slog.HandlerOptions{Level: level}
	if opts.JSON {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// Klog routes klog (and therefore every in-process Kubernetes component)
// into logger and sets klog's verbosity: 0 normally, 2 with debug.
func Klog(logger *slog.Logger, opts Options) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	v := 0
	if opts.Debug {
		v = 2
	}
	if err := fs.Set("v", strconv.Itoa(v)); err != nil {
		return err
	}
	klog.SetSlogLogger(logger.With("component", "k8s"))
	return nil
}
