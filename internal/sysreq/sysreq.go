// Package sysreq checks, before monokube changes anything on the machine,
// every requirement of a role: privileges, kernel features, cgroups,
// iptables, a writable data directory with room in it, and free ports. Each
// check is a small function returning a Result (ok, warn or fail, with the
// fix); a role's Report is both what `monokube check-config` prints and what
// start refuses on.
package sysreq

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
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

// Checks are the environment probes, replaceable in unit tests. None of
// them changes the machine.
type Checks struct {
	Euid     func() int
	Listen   func(network, addr string) (net.Listener, error)
	LookPath func(file string) (string, error)
	// Output runs a command and returns its standard output.
	Output func(name string, args ...string) ([]byte, error)
	Statfs func(path string, st *unix.Statfs_t) error
	Files  Files // the kernel's /proc and /sys, and /lib/modules
}

// OS returns the checks against the real machine.
func OS() Checks {
	return Checks{
		Euid:     os.Geteuid,
		Listen:   net.Listen,
		LookPath: exec.LookPath,
		Output:   func(name string, args ...string) ([]byte, error) { return exec.Command(name, args...).Output() },
		Statfs:   unix.Statfs,
	}
}

// Root fails unless running as root.
func (c Checks) Root(cmd string) error { return c.RunsAsRoot(cmd).Err() }

// RunsAsRoot checks that monokube cmd runs as root.
func (c Checks) RunsAsRoot(cmd string) Result {
	if c.Euid() != 0 {
		return fail("root", fmt.Sprintf("monokube %s must run as root (it manages certificates, ports and, on nodes, containers)", cmd),
			"run it with sudo")
	}
	return ok("root", "running as root")
}

// Ports checks each port: it fails for one that is taken or whose address
// is not on this machine. It listens and closes at once; nothing stays
// bound.
func (c Checks) Ports(ports []Port) Report {
	var rep Report
	for _, p := range ports {
		rep = append(rep, c.port(p))
	}
	return rep
}

func (c Checks) port(p Port) Result {
	name := fmt.Sprintf("port %d (%s)", p.Port, p.What)
	hp := net.JoinHostPort(p.Addr.String(), strconv.Itoa(p.Port))
	l, err := c.Listen("tcp", hp)
	switch {
	case err == nil:
		l.Close()
		return ok(name, "free on "+p.Addr.String())
	case errors.Is(err, unix.EADDRINUSE):
		return fail(name, "already in use on "+p.Addr.String(),
			fmt.Sprintf("stop whatever listens there (ss -ltnp 'sport = :%d'), which may be monokube itself already running, or change %s",
				p.Port, p.What))
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fail(name, fmt.Sprintf("cannot listen on %s: %s is not an address of this machine", hp, p.Addr),
			"give one with --node-ip / --bind-address")
	default:
		return fail(name, fmt.Sprintf("cannot listen on %s: %v", hp, err), "check the address and port")
	}
}

// Writable fails unless dir exists as a writable directory or can be
// created: it checks the nearest existing ancestor without creating anything.
func Writable(dir, flag string) Result {
	name := "--" + flag
	p, fi, err := existingAncestor(dir)
	switch {
	case err != nil:
		return fail(name, fmt.Sprintf("%s: %v", dir, err), "pick another path")
	case !fi.IsDir():
		return fail(name, fmt.Sprintf("%s cannot be used: %s is not a directory", dir, p), "pick another path")
	}
	if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
		return fail(name, fmt.Sprintf("%s cannot be written (%s: %v)", dir, p, err),
			"pick a writable path or fix its permissions")
	}
	if p != dir {
		return ok(name, fmt.Sprintf("%s can be created in %s", dir, p))
	}
	return ok(name, dir+" is writable")
}

// existingAncestor returns dir, or its nearest ancestor that exists.
func existingAncestor(dir string) (string, os.FileInfo, error) {
	p := dir
	for {
		fi, err := os.Stat(p)
		if err == nil {
			return p, fi, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return p, nil, err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p, nil, errors.New("no existing parent directory")
		}
		p = parent
	}
}

// Free space below which a data dir fails or warns: images, etcd and
// container layers fill it.
const (
	minFree  = 1 << 30
	wantFree = 10 << 30
)

// DiskFree checks the free space where dir is (or will be).
func (c Checks) DiskFree(dir, flag string) Result {
	const name = "disk space"
	p, _, err := existingAncestor(dir)
	if err != nil {
		return warn(name, fmt.Sprintf("cannot tell for --%s %s: %v", flag, dir, err), "check the path")
	}
	var st unix.Statfs_t
	if err := c.Statfs(p, &st); err != nil {
		return warn(name, fmt.Sprintf("cannot tell for --%s %s (statfs %s: %v)", flag, dir, p, err), "check the path")
	}
	free := st.Bavail * uint64(st.Bsize)
	detail := fmt.Sprintf("%.1f GiB free for --%s %s", float64(free)/(1<<30), flag, dir)
	fix := fmt.Sprintf("free space there or pick a --%s with at least %d GiB free", flag, wantFree>>30)
	switch {
	case free < minFree:
		return fail(name, detail+fmt.Sprintf(" (under %d GiB): images and etcd will not fit", minFree>>30), fix)
	case free < wantFree:
		return warn(name, detail+fmt.Sprintf(" (under %d GiB): images and etcd fill it quickly", wantFree>>30), fix)
	}
	return ok(name, detail)
}
