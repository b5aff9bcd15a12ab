package cni

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/lifecycle"
)

// Writer waits until the node has a pod CIDR and writes the conflist for
// it; containerd picks the file up and the node turns Ready.
type Writer struct {
	newClient              func() (kubernetes.Interface, error)
	tune                   func(*Network) // the overlay's settings, once it is up; may be nil
	client                 kubernetes.Interface
	nodeName               string
	confDir                string
	log                    *slog.Logger
	*lifecycle.ReadySignal // set once the conflist is written
}

// NewWriter returns the CNI config component for nodeName. It makes its
// client with newClient when it starts: a joining node's credentials exist
// only once the kubelet has bootstrapped them.
// tune, if not nil, adjusts the network to the overlay (MTU, masquerade).
func NewWriter(newClient func() (kubernetes.Interface, error), tune func(*Network), nodeName, confDir string, log *slog.Logger) *Writer {
	return &Writer{newClient: newClient, tune: tune, nodeName: nodeName, confDir: confDir, log: log, ReadySignal: lifecycle.NewReadySignal()}
}

// Name implements lifecycle.Component.
func (*Writer) Name() string { return "pod network config" }

// Run writes the conflist once the pod CIDR is known, then waits for ctx.
func (w *Writer) Run(ctx context.Context) error {
	client, err := w.newClient()
	if err != nil {
		return err
	}
	w.client = client
	cidr, err := w.podCIDR(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := w.write(cidr); err != nil {
		return err
	}
	w.MarkReady()
	<-ctx.Done()
	return nil
}

// podCIDR polls the node object until the controller-manager has
// allocated its range.
func (w *Writer) podCIDR(ctx context.Context) (netip.Prefix, error) {
	return WaitPodCIDR(ctx, w.client, w.nodeName)
}

// WaitPodCIDR polls node nodeName until the controller-manager has
// allocated its pod range, and returns it.
func WaitPodCIDR(ctx context.Context, client kubernetes.Interface, nodeName string) (netip.Prefix, error) {
	for {
		node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil && node.Spec.PodCIDR != "" {
			p, err := netip.ParsePrefix(node.Spec.PodCIDR)
			if err != nil {
				return p, fmt.Errorf("node %s has pod CIDR %q: %w", nodeName, node.Spec.PodCIDR, err)
			}
			return p, nil
		}
		select {
		case <-ctx.Done():
			return netip.Prefix{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (w *Writer) write(cidr netip.Prefix) error {
	n := Network{PodCIDR: cidr}
	if w.tune != nil {
		w.tune(&n)
	}
	data, err := Render(n)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(w.confDir, 0o755); err != nil {
		return fmt.Errorf("create CNI conf dir: %w", err)
	}
	path := filepath.Join(w.confDir, ConfFile)
	if err := fsutil.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write CNI config: %w", err)
	}
	w.log.Info("pod network configured", "podCIDR", cidr, "file", path)
	return nil
}

// EnsureBlackholes adds (or keeps) a blackhole route for each prefix, so
// packets for in-cluster addresses that no pod or service holds are
// dropped here instead of following the default route off the machine.
func EnsureBlackholes(prefixes ...netip.Prefix) error {
	for _, p := range prefixes {
		dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		r := &netlink.Route{Dst: dst, Type: unix.RTN_BLACKHOLE}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("add blackhole route for %s: %w", p, err)
		}
	}
	return nil
}
