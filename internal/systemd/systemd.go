// Package systemd is monokube's side of systemd: the unit files that
// `monokube install` writes (and scripts/ ships for hand installs), and the
// readiness notification a Type=notify unit waits for.
package systemd

import (
	"bytes"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/template"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Role is what a unit runs: "server" or "agent".
type Role string

// The two roles a unit can run.
const (
	Server Role = "server"
	Agent  Role = "agent"
)

// UnitName is the unit file name of role: monokube.service for a server,
// monokube-agent.service for an agent, so one machine's role is obvious
// from `systemctl status`.
func (r Role) UnitName() string {
	if r == Agent {
		return "monokube-agent.service"
	}
	return "monokube.service"
}

// Unit is what a rendered unit runs.
type Unit struct {
	Role   Role
	Binary string // absolute path of monokube on the target machine
	Config string // --config to pass; empty for the default file
}

//go:embed unit.tmpl
var unitTemplate string

// Render returns the unit file for u.
func Render(u Unit) ([]byte, error) {
	if u.Role != Server && u.Role != Agent {
		return nil, fmt.Errorf("unknown role %q: use server or agent", u.Role)
	}
	if !strings.HasPrefix(u.Binary, "/") {
		return nil, fmt.Errorf("unit binary %q must be an absolute path", u.Binary)
	}
	t, err := template.New("unit").Parse(unitTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse unit template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, u); err != nil {
		return nil, fmt.Errorf("render %s: %w", u.Role.UnitName(), err)
	}
	return b.Bytes(), nil
}

// Ready tells systemd, when monokube runs under a Type=notify unit, that
// it is up: `systemctl start` returns and units ordered after it start.
// Outside systemd (no $NOTIFY_SOCKET) it does nothing.
func Ready() error { return notify(daemon.SdNotifyReady) }

// NotifyReady is Ready as a node's on-ready hook, which logs a failure:
// systemd then times the start out and says so itself.
func NotifyReady(log *slog.Logger) func() {
	return func() {
		if err := Ready(); err != nil {
			log.Warn("could not tell systemd monokube is ready", "err", err)
		}
	}
}

func notify(state string) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("notify systemd (%s): %w", state, err)
	}
	return nil
}

// Marker exists only where systemd is the init system (sd_booted(3)).
const Marker = "/run/systemd/system"

// Running reports whether systemd is this machine's init system.
func Running() bool {
	fi, err := os.Stat(Marker)
	return err == nil && fi.IsDir()
}
