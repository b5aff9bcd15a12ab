// Package etcd runs the embedded etcd server (go.etcd.io/etcd/server/v3/embed)
// that stores the cluster state: start, wait until ready, notice a server
// that stops on its own, and stop with a bound.
//
// It owns how the member is reached and named: clients on loopback at
// ClientPort (ClientURL, the apiserver's --etcd-servers), peers on the node
// IP at PeerPort (PeerURL), and the member named after its node. A new
// cluster starts with one member; Cluster (membership.go) adds a joining
// server's member as a learner, one at a time, and promotes it once it has
// caught up.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/monokube/monokube/internal/lifecycle"
)

// Config is what the embedded etcd needs; every field is required except
// the ports and Debug.
type Config struct {
	NodeName string     // the member is named after it
	NodeIP   netip.Addr // where peers reach this member
	DataDir  string
	CAFile   string // trusted for client and peer certificates
	// ServerCert/ServerKey serve clients; PeerCert/PeerKey serve and dial peers.
	ServerCert, ServerKey string
	PeerCert, PeerKey     string
	// ClientPort and PeerPort default (zero) to the package's ClientPort
	// and PeerPort; tests set free ones.
	ClientPort, PeerPort int
	Debug                bool
	// InitialCluster, for a member that joins a running cluster, is what
	// Cluster.AddLearner returned; etcd reads it at the member's first
	// start only. Empty: the first member of a new cluster.
	InitialCluster string
	// ForceNewCluster makes the member the only one of its cluster over
	// its data: a cluster reset (reset.go).
	ForceNewCluster bool
}

// closeTimeout bounds Close: etcd's own close can block on a stuck peer
// (etcd-io/etcd#9533) and a node must always be able to stop.
const closeTimeout = 5 * time.Second

// Etcd is the embedded etcd component.
type Etcd struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{}
	done  chan struct{}
	err   error // Run's result, set before done is closed
	// closed is closed once etcd's own Close has returned, which may be
	// after Run (see closeTimeout): tests wait for it.
	closed chan struct{}
	// onReady, if set, runs in Run once etcd is ready: tests reach the
	// server through it.
	onReady func(*embed.Etcd)
}

// New returns an Etcd that starts when Run is called.
func New(cfg Config, log *slog.Logger) *Etcd {
	if cfg.ClientPort == 0 {
		cfg.ClientPort = ClientPort
	}
	if cfg.PeerPort == 0 {
		cfg.PeerPort = PeerPort
	}
	return &Etcd{cfg: cfg, log: log, ready: make(chan struct{}), done: make(chan struct{}), closed: make(chan struct{})}
}

var (
	_ lifecycle.Component = (*Etcd)(nil)
	_ lifecycle.Readier   = (*Etcd)(nil)
	_ lifecycle.SlowStop  = (*Etcd)(nil)
)

// Name implements lifecycle.Component.
func (*Etcd) Name() string { return "etcd" }

// StopGrace implements lifecycle.SlowStop: etcd's own close bound and a second
// to return, so the group waits for etcd's close rather than moving on
// while it flushes.
func (*Etcd) StopGrace() time.Duration { return closeTimeout + time.Second }

// Run starts etcd and blocks until ctx ends (then closes it, returning nil)
// or etcd fails: a listener fails, or the server stops on its own (the
// member was removed, or raft or the backend hit a fatal error).
func (e *Etcd) Run(ctx context.Context) error {
	e.err = e.run(ctx)
	close(e.done)
	return e.err
}

func (e *Etcd) run(ctx context.Context) error {
	srv, err := embed.StartEtcd(e.embedConfig())
	if err != nil {
		return fmt.Errorf("start etcd in %s: %w", e.cfg.DataDir, err)
	}
	defer e.close(srv)
	// As etcd's own main does (server/etcdmain/etcd.go, v3.7.3), wait for
	// ready or stop: a server that stops while joining is never ready.
	if err := await(ctx, srv, e.cfg, srv.Server.ReadyNotify()); err != nil || ctx.Err() != nil {
		return err
	}
	close(e.ready)
	if e.onReady != nil {
		e.onReady(srv)
	}
	return await(ctx, srv, e.cfg, nil)
}

// await blocks until until is closed (nil: never) or ctx ends, returning
// nil, or until etcd fails, returning why.
func await(ctx context.Context, srv *embed.Etcd, c Config, until <-chan struct{}) error {
	select {
	case <-until:
		return nil
	case <-ctx.Done():
		return nil
	case <-srv.Server.StopNotify():
		return stopped(srv, c)
	case err := <-srv.Err():
		if removed(srv, c) { // a listener that stopped with the server
			return ErrRemoved
		}
		return served(err)
	}
}

// stopped explains a server that stopped without being closed. etcd logs
// the cause itself ("server error", at warn) and does not return it; only a
// listener's failure, if one came with the stop, is on Err.
func stopped(srv *embed.Etcd, c Config) error {
	if removed(srv, c) {
		return ErrRemoved
	}
	select {
	case err := <-srv.Err():
		if err != nil {
			return fmt.Errorf("etcd server stopped on its own: %w", err)
		}
	default:
	}
	return errors.New("etcd server stopped on its own; etcd's log above says why")
}

// served is the error of a client or peer listener that stopped serving.
func served(err error) error {
	if err == nil {
		return errors.New("etcd stopped serving")
	}
	return fmt.Errorf("etcd serve: %w", err)
}

// WaitReady returns once etcd serves clients, or why it never will.
func (e *Etcd) WaitReady(ctx context.Context) error {
	select {
	case <-e.ready:
		return nil
	case <-e.done:
		if e.err == nil { // ctx ended first
			return errors.New("etcd stopped before it was ready")
		}
		return fmt.Errorf("etcd stopped before it was ready: %w", e.err)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (e *Etcd) close(srv *embed.Etcd) {
	go func() {
		srv.Close()
		close(e.closed)
	}()
	select {
	case <-e.closed:
	case <-time.After(closeTimeout):
		e.log.Warn("etcd did not close in time; leaving it to process exit", "timeout", closeTimeout)
	}
}
