// Package apilb is an agent's client-side load balancer to the cluster's
// apiservers. The node's kubelet, kube-proxy and flannel talk to one local
// address; the balancer carries each TCP connection (TLS stays end to end)
// to a server that answers, and learns the servers from the
// default/kubernetes EndpointSlices, where every apiserver publishes its
// address. A lost server costs a reconnect, not the node: its connections
// are closed (by the kernel when its process dies, by the balancer when its
// health probe fails) and the clients reconnect through the balancer to
// another one.
//
// A server's apiserver reaches the etcd members through one too (Prefer:
// its own member first), with an etcd health probe and the member list in
// place of /readyz and the EndpointSlices (Config.Probe, Config.Learn).
package apilb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/lifecycle"
)

// Port is where the balancer listens, on loopback (the port k3s's agents
// use for theirs).
const Port = 6444

// dialTimeout bounds a dial to one server before the next is tried.
const dialTimeout = 3 * time.Second

// Config is what a balancer needs.
type Config struct {
	// Listen is the local address, 127.0.0.1:6444 unless a test says.
	Listen string
	// Joined is the host:port of the server the node joined, always kept.
	Joined string
	// StateFile is where the known servers are kept across restarts.
	StateFile string
	// ServerCAFile holds the PEM bundle the servers' serving certificates
	// chain to, for the health probes; read at each probe, so that the
	// probes follow a CA rotation.
	ServerCAFile string
	// Kubeconfig is the node's own credentials, for the EndpointSlice
	// watch (through the balancer itself); the watch waits until the file
	// exists (the kubelet writes it once it holds its certificate).
	Kubeconfig string

	// What names the servers in logs and messages; "apiserver" if empty.
	What string
	// Prefer makes Joined the first choice whenever it is healthy (a
	// server's own etcd member); otherwise the balancer sticks to the
	// server it reached last.
	Prefer bool
	// Probe reports whether the server at addr answers; nil: its /readyz
	// over TLS verified against ServerCAFile.
	Probe func(ctx context.Context, addr string) error
	// Learn calls set with the servers' addresses whenever they change,
	// until ctx ends; nil: the default/kubernetes EndpointSlices, watched
	// with Kubeconfig.
	Learn func(ctx context.Context, set func(addrs []string))
}

// LB is the balancer, a lifecycle component.
type LB struct {
	cfg   Config
	log   *slog.Logger
	pool  *pool
	ready *lifecycle.ReadySignal
	// saveMu orders the state file's writers.
	saveMu sync.Mutex
	// allDown is set while no server answers, so that it is logged once.
	allDown atomic.Bool
	// probeEvery is probeInterval (shorter in unit tests).
	probeEvery time.Duration
	// addr is where it listens, once ready.
	addr atomic.Value
}

var (
	_ lifecycle.Component = (*LB)(nil)
	_ lifecycle.Readier   = (*LB)(nil)
)

// New returns a balancer starting from the servers its state file lists,
// and the joined one.
func New(cfg Config, log *slog.Logger) *LB {
	var known []string
	if st, err := LoadState(cfg.StateFile); err == nil {
		known = st.Addresses()
	}
	if cfg.What == "" {
		cfg.What = "apiserver"
	}
	p := newPool(cfg.Joined, known)
	p.prefer = cfg.Prefer
	return &LB{cfg: cfg, log: log, pool: p, ready: lifecycle.NewReadySignal(), probeEvery: probeInterval}
}

// NodeAddr is where a node's balancer listens: 127.0.0.1:Port.
func NodeAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port)) }

// URL is the address the node's clients use.
func URL(listen string) string { return "https://" + listen }

// Addr is the address the balancer listens on, once it is ready.
func (lb *LB) Addr() string {
	a, _ := lb.addr.Load().(string)
	return a
}

// Name implements lifecycle.Component.
func (lb *LB) Name() string { return strings.ReplaceAll(lb.cfg.What, " ", "-") + "-lb" }

// WaitReady implements lifecycle.Readier: the balancer listens.
func (lb *LB) WaitReady(ctx context.Context) error { return lb.ready.WaitReady(ctx) }

// Run implements lifecycle.Component: it accepts and carries connections,
// probes the servers and watches for new ones until ctx ends.
func (lb *LB) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", lb.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s for the %s load balancer (is another monokube running on this machine?): %w", lb.cfg.Listen, lb.cfg.What, err)
	}
	lb.addr.Store(ln.Addr().String())
	lb.log.Info(lb.cfg.What+" load balancer listening", "address", lb.Addr(), "servers", lb.pool.addrs())
	lb.save()
	lb.ready.MarkReady()
	var wg sync.WaitGroup
	wg.Go(func() { lb.probeLoop(ctx) })
	wg.Go(func() { lb.watchLoop(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		_ = ln.Close()
	})
	err = lb.accept(ctx, ln)
	wg.Wait()
	return err
}

func (lb *LB) accept(ctx context.Context, ln net.Listener) error {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s load balancer: accept: %w", lb.cfg.What, err)
		}
		conns.Go(func() { lb.carry(ctx, c) })
	}
}

// carry connects client to a server and copies both ways until either
// side closes.
func (lb *LB) carry(ctx context.Context, client net.Conn) {
	defer client.Close()
	backend, addr, err := lb.dial(ctx)
	if err != nil {
		if !lb.allDown.Swap(true) && ctx.Err() == nil {
			lb.log.Warn("no "+lb.cfg.What+" answers; the clients retry", "servers", lb.pool.addrs(), "err", err)
			lb.save()
		}
		return
	}
	if lb.allDown.Swap(false) {
		lb.log.Info("a server answers again", "what", lb.cfg.What, "server", addr)
	}
	p := &pair{client: client, backend: backend}
	untrack := lb.pool.track(addr, p)
	defer untrack()
	stop := context.AfterFunc(ctx, func() { _ = p.Close() }) // the balancer stops: so do its connections
	defer stop()
	p.copy()
}

// dial tries the servers in the pool's order.
func (lb *LB) dial(ctx context.Context) (net.Conn, string, error) {
	d := net.Dialer{Timeout: dialTimeout}
	var errs []error
	for _, addr := range lb.pool.order() {
		c, err := d.DialContext(ctx, "tcp", addr)
		changed, was := lb.pool.dialed(addr, err)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if changed {
			lb.log.Info("connections go to another "+lb.cfg.What, "server", addr, "was", was)
			lb.save()
		}
		return c, addr, nil
	}
	return nil, "", errors.Join(errs...)
}

// save writes the pool's state file, if it has one; a failure is logged,
// never fatal (the file only helps a restart and `monokube servers`).
func (lb *LB) save() {
	if lb.cfg.StateFile == "" {
		return
	}
	lb.saveMu.Lock()
	defer lb.saveMu.Unlock()
	if err := fsutil.SaveState(lb.cfg.StateFile, lb.pool.state(lb.cfg.Listen)); err != nil {
		lb.log.Warn("cannot save the servers the load balancer knows", "what", lb.cfg.What, "err", err)
	}
}

// pair is one carried connection: a client's and its server's halves.
type pair struct {
	client, backend net.Conn
	once            sync.Once
}

// copy copies both ways; when one direction ends, both halves close.
func (p *pair) copy() {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(p.backend, p.client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(p.client, p.backend); done <- struct{}{} }()
	<-done
	_ = p.Close()
	<-done
}

// Close closes both halves (the pool drops a down server's connections so).
func (p *pair) Close() error {
	p.once.Do(func() {
		_ = p.client.Close()
		_ = p.backend.Close()
	})
	return nil
}
