package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/supervise"
)

// Daemon is containerd as a supervised child process of monokube: the
// same binary started as `monokube containerd --config FILE`.
type Daemon struct {
	*supervise.Process
	address string
}

var (
	_ lifecycle.Component = (*Daemon)(nil)
	_ lifecycle.Readier   = (*Daemon)(nil)
	_ lifecycle.SlowStop  = (*Daemon)(nil)
)

// NewDaemon returns the containerd component. self is monokube's own
// executable; binDir holds containerd-shim-runc-v2, which containerd
// finds on PATH.
func NewDaemon(self, configFile, address, binDir string, log *slog.Logger) *Daemon {
	spec := supervise.DefaultSpec("containerd", self, "containerd", "--config", configFile)
	// containerd would tell systemd it is ready too: only monokube may.
	env := slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "NOTIFY_SOCKET=") })
	spec.Env = append(env, "PATH="+binDir+":"+os.Getenv("PATH"))
	spec.Output = logLine(log)
	return &Daemon{Process: supervise.New(spec, log), address: address}
}

// WaitReady waits until containerd serves its API.
func (d *Daemon) WaitReady(ctx context.Context) error {
	for {
		if err := d.ping(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *Daemon) ping(ctx context.Context) error {
	if _, err := os.Stat(d.address); err != nil {
		return err
	}
	c, err := client.New(d.address, client.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	ok, err := c.IsServing(ctx)
	if err == nil && !ok {
		err = fmt.Errorf("containerd at %s is not serving", d.address)
	}
	return err
}

// logLine turns containerd's JSON log lines into records of log.
func logLine(log *slog.Logger) func([]byte) {
	return func(line []byte) {
		var fields map[string]any
		if json.Unmarshal(line, &fields) != nil {
			log.Info(string(line))
			return
		}
		msg, _ := fields["msg"].(string)
		level := containerdLevel(fields["level"])
		delete(fields, "msg")
		delete(fields, "level")
		delete(fields, "time")
		attrs := make([]any, 0, 2*len(fields))
		for k, v := range fields {
			attrs = append(attrs, k, v)
		}
		log.Log(context.Background(), level, msg, attrs...)
	}
}

func containerdLevel(v any) slog.Level {
	switch v {
	case "debug", "trace":
		return slog.LevelDebug
	case "warning", "warn":
		return slog.LevelWarn
	case "error", "fatal", "panic":
		return slog.LevelError
	}
	return slog.LevelInfo
}
