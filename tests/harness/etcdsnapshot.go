package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EtcdSnapshot is a row of `monokube etcd-snapshot ls -o json`.
type EtcdSnapshot struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Kind     string    `json:"kind"` // scheduled, on-demand or pre-upgrade
	Node     string    `json:"node"`
	Created  time.Time `json:"created"`
	Size     int64     `json:"size"`
	Revision int64     `json:"revision"`
	Status   string    `json:"status"` // ok, or "damaged: why"
}

// SaveEtcdSnapshot runs `monokube etcd-snapshot save` (with --name unless
// name is empty) on the server and returns the one path it prints; a
// failure fails the test.
func (n *Node) SaveEtcdSnapshot(name string) string {
	n.t.Helper()
	args := []string{"etcd-snapshot", "save", "--data-dir", n.DataDir}
	if name != "" {
		args = append(args, "--name", name)
	}
	r := n.Exec(2*time.Minute, Options{}, args...)
	path := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || path == "" || strings.Contains(path, "\n") {
		n.t.Fatalf("etcd-snapshot save: exit %d, want one path on stdout:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	return path
}

// EtcdSnapshots lists the server's snapshots (`etcd-snapshot ls -o json`);
// a failure fails the test.
func (n *Node) EtcdSnapshots() []EtcdSnapshot {
	n.t.Helper()
	r := n.Exec(time.Minute, Options{}, "etcd-snapshot", "ls", "--data-dir", n.DataDir, "-o", "json")
	var out []EtcdSnapshot
	if err := json.Unmarshal([]byte(r.Stdout), &out); r.Code != 0 || err != nil {
		n.t.Fatalf("etcd-snapshot ls -o json: exit %d (%v):\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	return out
}

// RecoveryKey is what `monokube etcd-snapshot recovery-key` prints on the
// server: one line; a failure fails the test.
func (n *Node) RecoveryKey() string {
	n.t.Helper()
	r := n.Exec(time.Minute, Options{}, "etcd-snapshot", "recovery-key", "--data-dir", n.DataDir)
	key := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || key == "" || strings.Contains(key, "\n") {
		n.t.Fatalf("etcd-snapshot recovery-key: exit %d, want one line:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	return key
}

// RunServer runs `monokube server` with the arguments StartServerNode
// (node true) or StartServer would give it, plus extra, as a short command
// that must end by itself within two minutes: for starts that are refused.
func (n *Node) RunServer(node bool, extra ...string) Result {
	n.t.Helper()
	args := []string{"server", "--disable-agent", "--write-kubeconfig", n.Kubeconfig}
	if node {
		args = []string{"server", "--write-kubeconfig", n.Kubeconfig, "--kubelet-arg", "cgroup-root=" + n.CgroupRoot}
	}
	args = append(args, "--data-dir", n.DataDir, "--run-dir", n.RunDir, "--node-ip", n.NS.IP)
	return n.Exec(2*time.Minute, Options{}, append(args, extra...)...)
}

// CountLogLines counts the lines of the node's log that hold every one of
// subs.
func (n *Node) CountLogLines(subs ...string) int {
	b, _ := os.ReadFile(n.LogPath)
	count := 0
	for _, line := range strings.Split(string(b), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			count++
		}
	}
	return count
}

// DirState describes the tree at root, one line per entry: path, mode,
// size, modification time and, for files, a SHA-256 of the content; "absent"
// when root does not exist. Two equal states mean nothing in it changed.
func DirState(t testing.TB, root string) string {
	t.Helper()
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return "absent"
	}
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(data)
			sum = hex.EncodeToString(h[:])
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %s %d %d %s\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), sum)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", root, err)
	}
	return b.String()
}

// HoldMountpoints keeps the host directories that nodes bind their private
// copies over in place until t ends. Parallel subtests of t each make
// nodes; without this, one that made a missing directory would remove it
// at its end while the other's nodes still use it.
func HoldMountpoints(t testing.TB) {
	t.Helper()
	for _, d := range privateDirs {
		ensureMountpoint(t, d)
	}
}
