// Package systemd is monokube's side of systemd: the unit files that
// `monokube install` writes (and scripts/ ships for hand installs), and the
// readiness notification a Type=notify unit waits for.
package systemd

import (
	"bytes"
	_ "embed"
	"fmt"
	"log/slog"
	"net"
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

// NotifySocketEnv names the socket systemd gives a Type=notify unit.
const NotifySocketEnv = "NOTIFY_SOCKET"

// pendingSocketEnv keeps the socket, until READY=1 is sent, for this
// process run again in place (a node's restart, lifecycle.RestartError):
// systemd still waits for that READY=1.
const pendingSocketEnv = "MONOKUBE_NOTIFY_SOCKET"

// Notifier tells systemd about this process. A role takes it once at
// start, which removes the socket from the environment: the kubelet, run
// in-process, sends its own READY=1 as soon as it starts (upstream
// cmd/kubelet/app/server.go, run), which would let `systemctl start`
// return before the rest of the node is up, and no child process has
// anything to tell systemd either.
type Notifier struct{ socket string }

// TakeNotifier returns the notifier for $NOTIFY_SOCKET (or the one a
// restart before readiness kept) and unsets it. Outside systemd (no
// socket) its Ready does nothing.
func TakeNotifier() Notifier {
	n := Notifier{socket: os.Getenv(NotifySocketEnv)}
	if n.socket == "" {
		n.socket = os.Getenv(pendingSocketEnv)
	}
	_ = os.Unsetenv(NotifySocketEnv) // fails only for an invalid name
	if n.socket != "" {
		_ = os.Setenv(pendingSocketEnv, n.socket)
	}
	return n
}

// Ready tells systemd, when monokube runs under a Type=notify unit, that
// it is up: `systemctl start` returns and units ordered after it start.
func (n Notifier) Ready() error {
	err := n.send(daemon.SdNotifyReady)
	if err == nil {
		_ = os.Unsetenv(pendingSocketEnv)
	}
	return err
}

// ReadyHook is Ready as a node's on-ready hook, which logs a failure:
// systemd then times the start out and says so itself.
func (n Notifier) ReadyHook(log *slog.Logger) func() {
	return func() {
		if err := n.Ready(); err != nil {
			log.Warn("could not tell systemd monokube is ready", "err", err)
		}
	}
}

// send writes one sd_notify(3) datagram; a socket name starting with @ is
// in the abstract namespace, which net handles.
func (n Notifier) send(state string) error {
	if n.socket == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd (%s): %w", state, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
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
