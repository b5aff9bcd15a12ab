// Package etcd runs the embedded etcd server (go.etcd.io/etcd/server/v3/embed)
// that stores the cluster state: start, wait until ready, stop with a bound.
//
// It owns how the member is reached and named: clients on loopback at
// ClientPort (ClientURL, the apiserver's --etcd-servers), peers on the node
// IP at PeerPort (PeerURL), and the member named after its node. Today the
// cluster has this one member; membership (add, promote, remove) comes with
// HA servers.
package etcd

import (
	"context"
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
}

// New returns an Etcd that starts when Run is called.
func New(cfg Config, log *slog.Logger) *Etcd {
	if cfg.ClientPort == 0 {
		cfg.ClientPort = ClientPort
	}
	if cfg.PeerPort == 0 {
		cfg.PeerPort = PeerPort
	}
	return &Etcd{cfg: cfg, log: log, ready: make(chan struct{}), done: make(chan struct{})}
}

var (
	_ lifecycle.Component = (*Etcd)(nil)
	_ lifecycle.Readier   = (*Etcd)(nil)
)

// Name implements lifecycle.Component.
func (*Etcd) Name() string { return "etcd" }

// Run starts etcd and blocks until ctx ends (then closes it, returning nil)
// or etcd fails.
func (e *Etcd) Run(ctx context.Context) error {
	defer close(e.done)
	srv, err := embed.StartEtcd(e.embedConfig())
	if err != nil {
		return fmt.Errorf("start etcd in %s: %w", e.cfg.DataDir, err)
	}
	defer e.close(srv)
	select {
	case <-srv.Server.ReadyNotify():
		close(e.ready)
	case err := <-srv.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-srv.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		return nil
	}
}

// WaitReady returns once etcd serves clients.
func (e *Etcd) WaitReady(ctx context.Context) error {
	select {
	case <-e.ready:
		return nil
	case <-e.done:
		return fmt.Errorf("etcd stopped before it was ready")
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (e *Etcd) close(srv *embed.Etcd) {
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(closeTimeout):
		e.log.Warn("etcd did not close in time; leaving it to process exit", "timeout", closeTimeout)
	}
}
