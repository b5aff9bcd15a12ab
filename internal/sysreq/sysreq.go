// Package sysreq checks, before monokube changes anything on the machine,
// that it can run here: privileges, a writable data directory and free ports.
// Each failure says what to do about it.
package sysreq

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Port is a TCP address monokube will listen on.
type Port struct {
	Addr netip.Addr
	Port int
	What string // the flag or component that owns it, for the message
}

// Checks are the environment probes, replaceable in unit tests.
type Checks struct {
	Euid   func() int
	Listen func(network, addr string) (net.Listener, error)
}

// OS returns the checks against the real machine.
func OS() Checks { return Checks{Euid: os.Geteuid, Listen: net.Listen} }

// Root fails unless running as root.
func (c Checks) Root(cmd string) error {
	if c.Euid() != 0 {
		return fmt.Errorf("monokube %s must run as root (it manages certificates, ports and, on nodes, containers): run it with sudo", cmd)
	}
	return nil
}

// Ports fails for each port that is taken or whose address is not on this
// machine. It listens and closes at once; nothing stays bound.
func (c Checks) Ports(ports []Port) error {
	var errs []error
	for _, p := range ports {
		hp := net.JoinHostPort(p.Addr.String(), strconv.Itoa(p.Port))
		l, err := c.Listen("tcp", hp)
		switch {
		case err == nil:
			l.Close()
		case errors.Is(err, unix.EADDRINUSE):
			errs = append(errs, fmt.Errorf("port %d (%s) is already in use on %s: stop whatever listens there (ss -ltnp 'sport = :%d') or change %s",
				p.Port, p.What, p.Addr, p.Port, p.What))
		case errors.Is(err, unix.EADDRNOTAVAIL):
			errs = append(errs, fmt.Errorf("cannot listen on %s for %s: %s is not an address of this machine; give one with --node-ip / --bind-address",
				hp, p.What, p.Addr))
		default:
			errs = append(errs, fmt.Errorf("cannot listen on %s for %s: %w", hp, p.What, err))
		}
	}
	return errors.Join(errs...)
}

// Writable fails unless dir exists as a writable directory or can be
// created: it checks the nearest existing ancestor without creating anything.
func Writable(dir, flag string) error {
	p := dir
	for {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("--%s %s cannot be used: %s is not a directory; pick another path", flag, dir, p)
			}
			if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("--%s %s cannot be written (%s: %w); pick a writable path or fix its permissions", flag, dir, p, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--%s %s: %w", flag, dir, err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("--%s %s: no existing parent directory", flag, dir)
		}
		p = parent
	}
}
