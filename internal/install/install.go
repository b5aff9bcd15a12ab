// Package install puts monokube on a machine as a systemd service, and
// takes it off again: the binary, its config file and its unit. Everything
// it writes can go under a staging root instead of /, for images and tests.
package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/systemd"
)

// Where units and the binary go on the target machine.
const (
	UnitDir       = "/etc/systemd/system"
	DefaultBinDir = "/usr/local/bin"
)

// Links are the multicall names installed beside the binary.
var Links = []string{"kubectl", "crictl", "ctr"} //nolint:gochecknoglobals // fixed table

// Paths locates an installation. Every path is as the target machine sees
// it; Root prefixes them all when writing.
type Paths struct {
	Root   string // staging root, "" for this machine
	BinDir string // where the binary goes, /usr/local/bin
	Config string // the config file, /etc/monokube/config.yaml
}

func (p Paths) onRoot(path string) string { return filepath.Join(p.Root, path) }

// Binary is where the installed binary lives on the target.
func (p Paths) Binary() string { return filepath.Join(p.BinDir, "monokube") }

// Unit is the path of role's unit file on the target.
func (p Paths) Unit(r systemd.Role) string { return filepath.Join(UnitDir, r.UnitName()) }

// Options is one install.
type Options struct {
	Paths
	Role          systemd.Role
	Source        string // the binary to install
	Config        []byte // the config file's new content
	DefaultConfig bool   // Paths.Config is the default, so the unit needs no --config
	Start         bool   // enable and start the unit with systemctl
}

// Install copies the binary, writes the config file (0600: it may hold a
// token) and the unit, and, with Start, enables and starts the service.
func Install(o Options, log *slog.Logger) error {
	other := systemd.Server
	if o.Role == systemd.Server {
		other = systemd.Agent
	}
	if _, err := os.Stat(o.onRoot(o.Unit(other))); err == nil {
		return fmt.Errorf("this machine already has a monokube %s (%s): run monokube uninstall first", other, o.Unit(other))
	}
	unit := systemd.Unit{Role: o.Role, Binary: o.Binary()}
	if !o.DefaultConfig {
		unit.Config = o.Paths.Config
	}
	rendered, err := systemd.Render(unit)
	if err != nil {
		return err
	}
	if err := copyBinary(o.Source, o.onRoot(o.Binary())); err != nil {
		return err
	}
	if err := linkNames(o.onRoot(o.BinDir)); err != nil {
		return err
	}
	if err := fsutil.WriteFile(o.onRoot(o.Paths.Config), o.Config, 0o600); err != nil {
		return fmt.Errorf("write config file: %w", err)
	}
	if err := fsutil.WriteFile(o.onRoot(o.Unit(o.Role)), rendered, 0o644); err != nil {
		return fmt.Errorf("write unit: %w", err)
	}
	log.Info("installed", "binary", o.onRoot(o.Binary()), "config", o.onRoot(o.Paths.Config), "unit", o.onRoot(o.Unit(o.Role)))
	if !o.Start {
		log.Info("not starting the service: systemd is not running here, or --root was given", "start-with", "systemctl enable --now "+o.Role.UnitName())
		return nil
	}
	if err := systemctl("daemon-reload"); err != nil {
		return err
	}
	if err := systemctl("enable", o.Role.UnitName()); err != nil {
		return err
	}
	// restart, not start: a second install's config and binary take effect.
	log.Info("starting "+o.Role.UnitName()+"; this returns once the node is ready", "follow", "journalctl -fu "+o.Role.UnitName())
	return systemctl("restart", o.Role.UnitName())
}

// copyBinary copies src to dst through a temporary file, unless they are
// already the same file.
func copyBinary(src, dst string) error {
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(dst); err == nil && os.SameFile(a, b) {
			return nil
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".monokube-*")
	if err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("install binary to %s: %w; free some space or pick another --bin-dir", dst, err)
	}
	return nil
}

// linkNames adds kubectl, crictl and ctr beside the binary where no such
// command exists yet.
func linkNames(dir string) error {
	for _, name := range Links {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.Symlink("monokube", p); err != nil {
			return fmt.Errorf("link %s: %w", p, err)
		}
	}
	return nil
}

func systemctl(args ...string) error {
	out, err := exec.Command("systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s; see systemctl status and journalctl -u for the unit", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// removeIfExists removes path; a missing path is fine.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
