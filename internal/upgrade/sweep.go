package upgrade

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/proc"
)

// sweepEvery is how often old versions' directories are looked at again:
// an old shim keeps its version's directory until its pod goes.
const sweepEvery = 5 * time.Minute

// sweepGrace spares a version directory used this recently: the launcher
// and the helper extraction touch theirs just before they exec what is in
// it (from then on the running binary keeps it), and an older launcher,
// which takes no lock, unpacks into a new one.
const sweepGrace = 30 * time.Second

// lockedRetry is how soon a sweep that found the lock taken is tried again.
const lockedRetry = 5 * time.Second

// Sweeper removes the version directories under <data-dir>/data/ that
// this version does not use and no process runs a binary from: what an
// upgrade leaves behind once the old version's shims have exited.
type Sweeper struct {
	dataDir string
	keep    []string
	log     *slog.Logger
}

// NewSweeper returns the component that sweeps dataDir, keeping the
// version directories that hold keep (this version's files).
func NewSweeper(dataDir string, log *slog.Logger, keep ...string) *Sweeper {
	// /proc shows binaries by their real paths: compare real paths.
	resolve := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return p
	}
	s := &Sweeper{dataDir: resolve(dataDir), log: log}
	for _, k := range keep {
		s.keep = append(s.keep, resolve(k))
	}
	return s
}

var _ lifecycle.Component = (*Sweeper)(nil)

// Name implements lifecycle.Component.
func (s *Sweeper) Name() string { return "version-sweeper" }

// Run implements lifecycle.Component.
func (s *Sweeper) Run(ctx context.Context) error {
	for {
		t := time.NewTimer(s.Sweep())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Sweep removes every unused version directory now and returns how soon
// to look again: sooner than sweepEvery when it spared a directory only
// for being used within sweepGrace, or found the data dir's versions lock
// held (another monokube unpacking); it holds that lock while it decides
// and removes.
func (s *Sweeper) Sweep() time.Duration {
	layout := datadir.Layout{Data: s.dataDir}
	unlock, err := layout.TryLockVersions()
	if errors.Is(err, datadir.ErrLocked) {
		return lockedRetry
	}
	if err != nil {
		s.log.Warn("could not sweep old versions' files", "err", err)
		return sweepEvery
	}
	defer unlock()
	root := layout.Versions()
	entries, err := os.ReadDir(root)
	if err != nil {
		return sweepEvery
	}
	next := sweepEvery
	inUse := proc.Binaries(root + "/")
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if !e.IsDir() || s.kept(dir) || used(dir, inUse) {
			continue
		}
		if left := graceLeft(dir); left > 0 {
			next = min(next, left+time.Second)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("could not remove an old version's files", "dir", dir, "err", err)
			continue
		}
		s.log.Info("removed an old version's files: nothing runs them any more", "dir", dir)
	}
	return next
}

func (s *Sweeper) kept(dir string) bool {
	return slices.ContainsFunc(s.keep, func(k string) bool { return k == dir || strings.HasPrefix(k, dir+"/") })
}

// graceLeft is how long dir, last used (or changed) at its mtime, is
// still spared.
func graceLeft(dir string) time.Duration {
	fi, err := os.Stat(dir)
	if err != nil {
		return sweepGrace
	}
	return sweepGrace - time.Since(fi.ModTime())
}

func used(dir string, binaries map[int]string) bool {
	for _, exe := range binaries {
		if strings.HasPrefix(exe, dir+"/") {
			return true
		}
	}
	return false
}
