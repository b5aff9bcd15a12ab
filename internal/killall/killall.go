// Package killall turns a node off without residue: it stops monokube,
// containerd, every shim and container of the node, unmounts what they
// mounted, and deletes the interfaces, routes, iptables chains, cgroups and
// runtime files they made. The data dir stays; uninstall removes it.
//
// A node's processes are found by their binaries, which all live under
// <data-dir>/data/ (the unpacked monokube, the shims), and by the process
// trees and cgroups of those; nothing else on the machine is touched.
package killall

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
)

// Target names the node to turn off.
type Target struct {
	DataDir    string
	RunDir     string
	CgroupRoot string // the kubelet's --cgroup-root; "" or "/" by default
}

// Run stops and cleans up the node. Every step runs even if an earlier one
// failed; the errors are joined.
func Run(t Target, log *slog.Logger) error {
	t = t.resolved()
	if err := t.check(); err != nil {
		return err
	}
	return run(t, log)
}

// Check refuses a target Run would refuse, so callers can check before
// they stop anything (systemd units).
func Check(t Target) error { return t.resolved().check() }

func run(t Target, log *slog.Logger) error {
	var errs []error
	if err := stopProcesses(t, log); err != nil {
		errs = append(errs, err)
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"unmount", func() error { return unmountUnder(t.DataDir, t.RunDir) }},
		{"delete interfaces", deleteLinks},
		{"delete routes", deleteRoutes},
		{"delete iptables rules", cleanIptables},
		{"remove cgroups", func() error { return removeCgroups(t.CgroupRoot) }},
		{"remove shim sockets", func() error { return removeShimSockets(t.RunDir) }},
		{"remove run dir", func() error { _, err := fsutil.RemoveTree(t.RunDir, nil); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
		}
	}
	if len(errs) == 0 {
		log.Info("node stopped and cleaned up", "data-dir", t.DataDir)
	}
	return errors.Join(errs...)
}

// resolved follows symlinks in the dirs, as /proc and mountinfo show the
// real paths.
func (t Target) resolved() Target {
	for _, d := range []*string{&t.DataDir, &t.RunDir} {
		if r, err := filepath.EvalSymlinks(*d); err == nil {
			*d = r
		}
	}
	return t
}

// check refuses targets that would reach beyond one node: every path
// below them is unmounted or removed. An existing data dir must be one
// monokube marked as its own, and writable by root alone.
func (t Target) check() error {
	for _, d := range []struct{ flag, dir string }{{"data-dir", t.DataDir}, {"run-dir", t.RunDir}} {
		if !filepath.IsAbs(d.dir) || filepath.Clean(d.dir) == "/" {
			return fmt.Errorf("--%s %q: killall needs the node's own absolute directory, not / or a relative path", d.flag, d.dir)
		}
	}
	return datadir.Layout{Data: t.DataDir}.Owned()
}

// shimSocketDir is where containerd's shims put their sockets, whatever
// containerd's own paths.
const shimSocketDir = "/run/containerd/s/"

// removeShimSockets removes the sockets of the node's killed shims, named
// in each task bundle's bootstrap.json under the run dir.
func removeShimSockets(runDir string) error {
	files, _ := filepath.Glob(filepath.Join(datadir.Layout{Run: runDir}.ContainerdTasks(), "*", "*", "bootstrap.json"))
	var errs []error
	for _, f := range files {
		var b struct {
			Address string `json:"address"`
		}
		data, err := os.ReadFile(f)
		if err != nil || json.Unmarshal(data, &b) != nil {
			continue
		}
		sock := strings.TrimPrefix(b.Address, "unix://")
		if strings.HasPrefix(sock, shimSocketDir) {
			if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	_ = os.Remove(shimSocketDir) // only if no other containerd's shims use it
	return errors.Join(errs...)
}

// binRoot is where every binary of the node's processes lives.
func (t Target) binRoot() string { return datadir.Layout{Data: t.DataDir}.Versions() + "/" }
