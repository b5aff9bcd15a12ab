package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/satoken"
	"github.com/monokube/monokube/internal/snapshot"
)

// TestInterruptedRestore: a restore killed after its record was written
// refuses every start but the restore again, and says which command.
func TestInterruptedRestore(t *testing.T) {
	l := datadir.Layout{Data: t.TempDir()}
	if err := checkInterruptedRestore(&config.Server{}, l); err != nil {
		t.Fatalf("no record: %v", err)
	}
	if err := fsutil.SaveState(restoreRecordFile(l), restoreRecord{File: "/backups/a.snapshot.tar", Start: time.Now()}); err != nil {
		t.Fatal(err)
	}
	err := checkInterruptedRestore(&config.Server{}, l)
	if err == nil || !strings.Contains(err.Error(), "--cluster-reset-restore-path /backups/a.snapshot.tar") {
		t.Fatalf("a plain start over an interrupted restore: %v, want a refusal naming the command", err)
	}
	again := &config.Server{Restore: config.Restore{Path: "/backups/a.snapshot.tar"}}
	if err := checkInterruptedRestore(again, l); err != nil {
		t.Fatalf("the restore again: %v", err)
	}
}

// TestRecoveryKeyChoice: --recovery-key-file wins over the data dir's
// key; a data dir without one and no flag is refused with what to give.
func TestRecoveryKeyChoice(t *testing.T) {
	l := datadir.Layout{Data: t.TempDir()}
	c := control.NewCreds(l)
	if _, err := recoveryKey(config.Restore{}, c); err == nil || !strings.Contains(err.Error(), "--recovery-key-file") {
		t.Fatalf("no key anywhere: %v, want a refusal naming --recovery-key-file", err)
	}
	own, _, err := snapshot.EnsureKey(c.RecoveryKey)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "key")
	given, _, err := snapshot.EnsureKey(file)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := recoveryKey(config.Restore{}, c); err != nil || k != own {
		t.Errorf("the data dir's key: %v", err)
	}
	if k, err := recoveryKey(config.Restore{RecoveryKeyFile: file}, c); err != nil || k != given {
		t.Errorf("--recovery-key-file's key: %v", err)
	}
}

// A restore keeps the verifying keys rotated in after the snapshot, until
// a year from now, beside the snapshot's own.
func TestKeepVerifying(t *testing.T) {
	dir := t.TempDir()
	snapKey, snapPub := filepath.Join(dir, "snap.key"), filepath.Join(dir, "snap.pub")
	nowKey, nowPub := filepath.Join(dir, "service.key"), filepath.Join(dir, "service.pub")
	for _, kp := range [][2]string{{snapKey, snapPub}, {nowKey, nowPub}} {
		if err := pki.EnsureSigningKey(kp[0], kp[1]); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Now()
	files := []fsutil.File{{Path: nowPub, Data: read(snapPub), Mode: 0o644}}
	keepVerifying(files, nowPub, now)
	set, err := satoken.Parse(read(snapKey), files[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	current, err := satoken.Load(nowKey, nowPub)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Verify) != 2 || set.Verify[1].ID != current.SignerID || !set.Verify[1].RetireAfter.After(now.Add(364*24*time.Hour)) {
		t.Errorf("verifying keys after the restore: %+v; want the snapshot's, then the current one until a year from now", set.Verify)
	}
}
