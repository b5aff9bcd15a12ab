package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/killall"
	"github.com/monokube/monokube/internal/systemd"
)

// Removal is one uninstall.
type Removal struct {
	Paths
	Kubeconfig string // the admin kubeconfig a server wrote; "" for none
	Node       killall.Target
	KeepData   bool
	Stop       bool // disable and stop the units with systemctl
	// Leave, if set, removes this node from its cluster before it stops.
	Leave func(context.Context) error
}

// Uninstall stops this node's service, turns the node off (killall),
// removes it from its cluster (Leave), then removes the unit, config,
// binary, the files the node keeps outside its data dir and, unless
// KeepData, the data dir. If the node cannot be turned off completely
// nothing is removed, so a second run can finish the job. With a staging
// Root only the files staged there are removed: nothing runs from them.
func Uninstall(ctx context.Context, r Removal, log *slog.Logger) error {
	if r.Root != "" {
		if err := r.removeInstalled(); err != nil {
			return err
		}
		log.Info("removed the files staged under --root", "root", r.Root)
		return nil
	}
	if r.Stop {
		if err := StopServices(r.Paths, "disable", "--now"); err != nil {
			return err
		}
	}
	if err := killall.Run(r.Node, log); err != nil {
		return fmt.Errorf("%w; nothing was removed: fix that and run monokube uninstall again", err)
	}
	if r.Leave != nil {
		if err := r.Leave(ctx); err != nil {
			log.Warn("could not remove this node from its cluster; remove it there with kubectl delete node NAME", "err", err)
		}
	}
	errs := []error{r.removeInstalled(), removeNodeFiles()}
	if r.KeepData {
		log.Info("kept the data dir", "data-dir", r.Node.DataDir)
	} else {
		l := datadir.Layout{Data: r.Node.DataDir}
		left, err := fsutil.RemoveTree(l.Data, l.IsEntry)
		errs = append(errs, err)
		if len(left) > 0 {
			log.Warn("removed monokube's entries of the data dir and kept it: it holds other files", "data-dir", l.Data, "kept", left)
		}
	}
	if r.Stop {
		errs = append(errs, systemctl("daemon-reload"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log.Info("monokube uninstalled")
	return nil
}

// removeInstalled removes what install wrote: units, config file, admin
// kubeconfig, binary and links.
func (r Removal) removeInstalled() error {
	var errs []error
	for _, p := range r.files() {
		errs = append(errs, removeIfExists(p))
	}
	errs = append(errs, removeLinks(r.onRoot(r.BinDir)))
	_ = os.Remove(filepath.Dir(r.onRoot(r.Config))) // only if empty
	return errors.Join(errs...)
}

// StopServices stops (with systemctl verb args, such as "stop" or
// "disable --now") the monokube units installed under p, so that systemd
// does not restart what killall stops.
func StopServices(p Paths, verb ...string) error {
	for _, role := range []systemd.Role{systemd.Server, systemd.Agent} {
		if _, err := os.Stat(p.onRoot(p.Unit(role))); err == nil {
			if err := systemctl(append(verb, role.UnitName())...); err != nil {
				return err
			}
		}
	}
	return nil
}

// files are the installed files to remove.
func (r Removal) files() []string {
	out := []string{
		r.onRoot(r.Unit(systemd.Server)), r.onRoot(r.Unit(systemd.Agent)),
		r.onRoot(r.Config), r.onRoot(r.Binary()),
	}
	if r.Kubeconfig != "" {
		out = append(out, r.onRoot(r.Kubeconfig))
	}
	return out
}

// removeLinks removes the multicall links install made (those that still
// point at monokube).
func removeLinks(dir string) error {
	var errs []error
	for _, name := range Links {
		p := filepath.Join(dir, name)
		if target, err := os.Readlink(p); err == nil && filepath.Base(target) == "monokube" {
			errs = append(errs, removeIfExists(p))
		}
	}
	return errors.Join(errs...)
}

// hardCodedDirs are the node's files outside its data dir, in paths the
// kubelet and the CNI plugins do not let us move.
var hardCodedDirs = []string{ //nolint:gochecknoglobals // fixed table
	"/var/lib/cni/networks/monokube", // host-local's IP allocations
	"/var/lib/kubelet/device-plugins",
	"/var/log/pods",
}

// removeNodeFiles removes the node's files in hard-coded paths: pod logs
// and their links in /var/log/containers, CNI results and allocations, and
// the kubelet's device-plugin dir, then their parents if empty.
func removeNodeFiles() error {
	var errs []error
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && strings.HasPrefix(t, "/var/log/pods/") {
			errs = append(errs, removeIfExists(l))
		}
	}
	// The pod network's results and containerd's loopback ones.
	results, _ := filepath.Glob("/var/lib/cni/results/monokube-*")
	loopback, _ := filepath.Glob("/var/lib/cni/results/cni-loopback-*")
	results = append(results, loopback...)
	for _, p := range results {
		errs = append(errs, removeIfExists(p))
	}
	for _, d := range hardCodedDirs {
		_, err := fsutil.RemoveTree(d, nil)
		errs = append(errs, err)
	}
	for _, d := range []string{"/var/lib/cni/networks", "/var/lib/cni/results", "/var/lib/cni", "/var/lib/kubelet"} {
		_ = os.Remove(d) // only if empty
	}
	return errors.Join(errs...)
}
