package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/fsutil"
)

// exitNeedsUser is the exit code of a server that must not be restarted
// until someone acts (sysexits' EX_CONFIG); the systemd unit does not
// restart on it (RestartPreventExitStatus), so a removed server does not
// crash-loop.
const exitNeedsUser = 78

// removal is the record a removed server leaves (<data-dir>/server/removed.json):
// when, and where its etcd data went.
type removal struct {
	Time     time.Time `json:"time"`
	EtcdData string    `json:"etcdData"` // the data, moved aside
}

func removalFile(l datadir.Layout) string { return filepath.Join(l.Server(), "removed.json") }

// RemovedError is a start refused, or a run ended, because the cluster
// removed this server's etcd member. It says how to join again and is
// never retried by systemd (ExitCode).
type RemovedError struct{ r removal }

func (e *RemovedError) Error() string {
	return fmt.Sprintf("this server was removed from its cluster at %s; its etcd data is kept in %s. "+
		"To join the cluster again: on one of its servers run `monokube token create --role server`, then start this one with "+
		"--server https://THAT-SERVER:6443 --token-file FILE. monokube does not start a removed server as a cluster of its own: "+
		"to do that anyway, remove %s",
		e.r.Time.Local().Format(time.DateTime), e.r.EtcdData, "the record removed.json in its server dir")
}

// ExitCode is the process's exit code (cli.Run asks for it).
func (*RemovedError) ExitCode() int { return exitNeedsUser }

// retire is what a server does once its etcd member was removed: it moves
// the etcd data aside (never deletes it), records that, and returns the
// RemovedError the process exits with.
func retire(l datadir.Layout, log *slog.Logger) error {
	r := removal{Time: time.Now().UTC(), EtcdData: l.Etcd() + "-removed-" + time.Now().UTC().Format("20060102T150405Z")}
	if err := os.Rename(l.Etcd(), r.EtcdData); err != nil {
		return fmt.Errorf("%w, and its etcd data could not be moved aside: %w; move %s away before this server joins again", etcd.ErrRemoved, err, l.Etcd())
	}
	if err := fsutil.SaveState(removalFile(l), r); err != nil {
		log.Warn("cannot record the removal", "err", err)
	}
	return &RemovedError{r: r}
}

// checkRemoved refuses to start a removed server unless it joins a
// cluster (--server and --token); a join that gets as far as the identity
// clears the record.
func checkRemoved(l datadir.Layout, joins bool) error {
	var r removal
	fsutil.LoadState(removalFile(l), &r)
	if r.EtcdData == "" || joins {
		return nil
	}
	return &RemovedError{r: r}
}

// clearRemoved drops the removal record of a server joining again.
func clearRemoved(l datadir.Layout) error {
	if err := os.Remove(removalFile(l)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the record of this server's removal: %w", err)
	}
	return nil
}
