package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/nodewatch"
)

// hostsHeader starts every hosts.toml monokube writes: what it may
// remove again.
const hostsHeader = "# Written by monokube (embedded registry mirror)"

// Peers keeps the registry hosts configuration of a node's containerd
// (its config_path, Dir) listing the mirrors of the cluster's Ready
// nodes: this node's own first (it resolves tags of images it holds, so
// that imagePullPolicy Always works for them), then the others in name
// order starting after it (so that the nodes spread their requests),
// then the registry. containerd reads the files at each pull.
type Peers struct {
	Client kubernetes.Interface
	Node   string // this node's name
	Dir    string
	Hosts  Hosts // all but Peers, which Run fills
	Log    *slog.Logger
}

// Name implements lifecycle.Component.
func (*Peers) Name() string { return "registry-mirror-peers" }

// Run rewrites the configuration whenever a node changes, until ctx ends.
func (p *Peers) Run(ctx context.Context) error {
	written := ""
	return nodewatch.Run(ctx, p.Client, func(nodes []*corev1.Node) {
		peers := PeerAddrs(nodes, p.Node)
		if err := p.Write(peers); err != nil {
			p.Log.Warn("cannot write containerd's registry hosts configuration; pulls keep the mirrors they had", "err", err)
			return
		}
		if s := fmt.Sprint(peers); s != written {
			p.Log.Info("registry mirrors", "peers", peers, "registries", p.Hosts.Registries)
			written = s
		}
	})
}

// PeerAddrs are the mirrors of nodes (host:Port of their InternalIP):
// self first whatever its state, then the other Ready nodes in name
// order, starting after self.
func PeerAddrs(nodes []*corev1.Node, self string) []string {
	sorted := slices.SortedFunc(slices.Values(nodes), func(a, b *corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	at := slices.IndexFunc(sorted, func(n *corev1.Node) bool { return n.Name > self })
	if at < 0 {
		at = 0
	}
	sorted = append(sorted[at:], sorted[:at]...) // rotated: the names after self first
	var out []string
	for _, n := range sorted {
		addr := internalIP(n)
		switch {
		case addr == "":
		case n.Name == self:
			out = slices.Insert(out, 0, net.JoinHostPort(addr, strconv.Itoa(Port)))
		case ready(n):
			out = append(out, net.JoinHostPort(addr, strconv.Itoa(Port)))
		}
	}
	return out
}

func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Write makes Dir the hosts configuration of p.Hosts with peers: each
// changed hosts.toml replaced whole, and the directories of registries
// no longer listed that monokube wrote removed.
func (p *Peers) Write(peers []string) error {
	h := p.Hosts
	h.Peers = peers
	files, err := RenderHosts(h)
	if err != nil {
		return err
	}
	for dir, data := range files {
		path := filepath.Join(p.Dir, dir, "hosts.toml")
		if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, data) {
			continue
		}
		if err := fsutil.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, keep := files[e.Name()]; keep || !e.IsDir() {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(p.Dir, e.Name(), "hosts.toml")); err != nil || !bytes.HasPrefix(data, []byte(hostsHeader)) {
			continue // not ours
		}
		if err := os.RemoveAll(filepath.Join(p.Dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
