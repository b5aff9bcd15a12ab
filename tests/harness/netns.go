// Package harness runs real monokube nodes for end-to-end tests and
// benchmarks, each in its own network and mount namespace so that nothing a
// node does reaches the host: no route leaves a test namespace, and the kernel
// tunables the kubelet would rewrite are masked by bind-mounted files.
//
// It needs root and the ip(8) and mount(8) commands.
package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

// seq makes namespace names unique within this process.
var seq atomic.Int32 //nolint:gochecknoglobals // test-process counter

// Network is a private L2 segment: a bridge inside a hub namespace of its
// own. Nodes attach to it with veth pairs. It has no uplink.
type Network struct {
	hub    string
	prefix string // first three octets, e.g. "172.31.250"
}

// NewNetwork creates the hub namespace and bridge; t.Cleanup removes them.
func NewNetwork(t testing.TB) *Network {
	t.Helper()
	n := &Network{hub: fmt.Sprintf("mkh-%d-%d", os.Getpid(), seq.Add(1)), prefix: "172.31.250"}
	run(t, "ip", "netns", "add", n.hub)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.hub).Run() })
	run(t, "ip", "-n", n.hub, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", n.hub, "link", "set", "br0", "up")
	return n
}

// Netns is one node's network namespace.
type Netns struct {
	Name string
	IP   string
}

// AddHost creates a namespace attached to the bridge with address
// <prefix>.<octet>/24, loopback up and a blackhole default route, so
// traffic for anything outside the segment is dropped, never forwarded.
func (n *Network) AddHost(t testing.TB, octet int) *Netns {
	t.Helper()
	id := seq.Add(1)
	ns := &Netns{Name: fmt.Sprintf("mkn-%d-%d", os.Getpid(), id), IP: fmt.Sprintf("%s.%d", n.prefix, octet)}
	veth := fmt.Sprintf("mkv%d-%d", os.Getpid()%100000, id)
	run(t, "ip", "netns", "add", ns.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.Name).Run() })
	run(t, "ip", "-n", n.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
	run(t, "ip", "-n", n.hub, "link", "set", veth, "master", "br0", "up")
	run(t, "ip", "-n", ns.Name, "addr", "add", ns.IP+"/24", "dev", "eth0")
	run(t, "ip", "-n", ns.Name, "link", "set", "eth0", "up")
	run(t, "ip", "-n", ns.Name, "link", "set", "lo", "up")
	run(t, "ip", "-n", ns.Name, "route", "add", "blackhole", "default")
	return ns
}

// Do runs f on an OS thread that has entered the namespace. Sockets f
// creates stay in the namespace after f returns.
func (ns *Netns) Do(f func() error) error {
	target, err := netns.GetFromName(ns.Name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err == nil {
			// Only a thread that is back home may serve other goroutines;
			// otherwise it exits with this goroutine.
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// DialContext dials addr from inside the namespace.
func (ns *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listener inside the namespace.
func (ns *Netns) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
