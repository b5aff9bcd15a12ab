// Package etcd runs the embedded etcd server (go.etcd.io/etcd/server/v3/embed)
// that stores the cluster state: start, wait until ready, stop with a bound.
package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"

	"github.com/monokube/monokube/internal/lifecycle"
	mklog "github.com/monokube/monokube/internal/log"
	"github.com/monokube/monokube/internal/pki"
)

// Config is what the embedded etcd needs; every field is required.
type Config struct {
	Name      string // member name, the node name
	DataDir   string
	ClientURL url.URL // e.g. https://127.0.0.1:2379
	PeerURL   url.URL // e.g. https://<node-ip>:2380, for later HA members
	CAFile    string  // trusted for client and peer certificates
	// ServerCert/ServerKey serve clients; PeerCert/PeerKey serve and dial peers.
	ServerCert, ServerKey string
	PeerCert, PeerKey     string
	Debug                 bool
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
	return &Etcd{cfg: cfg, log: log, ready: make(chan struct{}), done: make(chan struct{})}
}

var _ lifecycle.Component = (*Etcd)(nil)
var _ lifecycle.Readier = (*Etcd)(nil)

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

func (e *Etcd) embedConfig() *embed.Config {
	c := e.cfg
	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	ec.ListenClientUrls = []url.URL{c.ClientURL}
	ec.AdvertiseClientUrls = []url.URL{c.ClientURL}
	ec.ListenPeerUrls = []url.URL{c.PeerURL}
	ec.AdvertisePeerUrls = []url.URL{c.PeerURL}
	ec.InitialCluster = ec.InitialClusterFromName(c.Name)
	ec.ClientTLSInfo = transport.TLSInfo{
		CertFile: c.ServerCert, KeyFile: c.ServerKey, TrustedCAFile: c.CAFile, ClientCertAuth: true,
	}
	ec.PeerTLSInfo = transport.TLSInfo{
		CertFile: c.PeerCert, KeyFile: c.PeerKey, TrustedCAFile: c.CAFile, ClientCertAuth: true,
	}
	ec.TlsMinVersion, ec.CipherSuites = "TLS1.2", pki.CipherSuites()
	// etcd logs every raft step at info; keep its warnings unless debugging.
	level := zapcore.WarnLevel
	if c.Debug {
		level = zapcore.InfoLevel
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(mklog.Zap(e.log, level))
	return ec
}
