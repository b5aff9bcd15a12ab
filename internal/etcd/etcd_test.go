package etcd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"

	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/testutil"
)

// bound caps every wait: a real etcd on loopback starts in well under it.
const bound = 30 * time.Second

// TestRunStops: etcd serves a put and a get over TLS, and a canceled ctx
// stops it cleanly, leaving no goroutine behind.
func TestRunStops(t *testing.T) {
	defer goleak.VerifyNone(t, peerConns...)
	cfg, client := testConfig(t)
	e := New(cfg, testLog(t))
	cancel, exited := start(t, e)
	defer cancel() // a failure before the cancel below still stops etcd
	waitReady(t, e)
	putGet(t, cfg, client)
	cancel()
	if err := wait(t, exited); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

// TestRunReportsStop: a server that stops on its own ends Run with an
// error that says so.
func TestRunReportsStop(t *testing.T) {
	defer goleak.VerifyNone(t, peerConns...)
	cfg, _ := testConfig(t)
	e := New(cfg, testLog(t))
	e.onReady = func(srv *embed.Etcd) { srv.Server.HardStop() }
	cancel, exited := start(t, e)
	defer cancel()
	waitReady(t, e)
	err := wait(t, exited)
	if err == nil || !strings.Contains(err.Error(), "etcd server stopped on its own") {
		t.Fatalf("Run after the server stopped = %v, want it to name the stop", err)
	}
}

// TestWaitReadyCause: when etcd cannot start (its client port is taken),
// WaitReady says it stopped and why.
func TestWaitReadyCause(t *testing.T) {
	defer goleak.VerifyNone(t, peerConns...)
	cfg, _ := testConfig(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ClientPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e := New(cfg, testLog(t))
	cancel, exited := start(t, e)
	defer cancel()
	ctx, stop := context.WithTimeout(t.Context(), bound)
	defer stop()
	err = e.WaitReady(ctx)
	if err == nil || !strings.Contains(err.Error(), "etcd stopped before it was ready") || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("WaitReady = %v, want it stopped before ready because the port is in use", err)
	}
	if err := wait(t, exited); err == nil {
		t.Fatal("Run = nil, want the start error")
	}
}

// testConfig makes throwaway certificates and free loopback ports, and
// returns the config with a client certificate of the same CA.
func testConfig(t *testing.T) (Config, pki.Files) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("test-etcd-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	files := func(name string) pki.Files { return pki.Files(filepath.Join(dir, name)) }
	write(t, files("ca"), ca)
	lo := []net.IP{net.IPv4(127, 0, 0, 1)}
	for name, spec := range map[string]pki.Spec{
		"server": {CommonName: "etcd-server", Usages: pki.PeerUsage, IPs: lo},
		"peer":   {CommonName: "etcd-peer", Usages: pki.PeerUsage, IPs: lo},
		"client": {CommonName: "etcd-client", Usages: pki.ClientUsage},
	} {
		kp, err := ca.Sign(spec, now)
		if err != nil {
			t.Fatal(err)
		}
		write(t, files(name), kp)
	}
	return Config{
		NodeName: "test", NodeIP: netip.MustParseAddr("127.0.0.1"), DataDir: filepath.Join(dir, "data"),
		CAFile:     files("ca").Cert(),
		ServerCert: files("server").Cert(), ServerKey: files("server").Key(),
		PeerCert: files("peer").Cert(), PeerKey: files("peer").Key(),
		ClientPort: testutil.FreePort(t), PeerPort: testutil.FreePort(t),
	}, files("client")
}

func write(t *testing.T, f pki.Files, kp *pki.KeyPair) {
	t.Helper()
	if err := pki.Write(f, kp); err != nil {
		t.Fatal(err)
	}
}

// testLog shows etcd's warnings in the test's output.
func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// start runs e; the returned cancel stops it and exited yields Run's error.
func start(t *testing.T, e *Etcd) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan error, 1)
	go func() { exited <- e.Run(ctx) }()
	return cancel, exited
}

func waitReady(t *testing.T, e *Etcd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	if err := e.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
}

// wait is Run's error, failing the test if Run does not return in time.
func wait(t *testing.T, exited <-chan error) error {
	t.Helper()
	select {
	case err := <-exited:
		return err
	case <-time.After(bound):
		t.Fatalf("Run did not return within %s", bound)
		return nil
	}
}

// putGet writes a key over TLS with a client certificate and reads it back.
func putGet(t *testing.T, cfg Config, cert pki.Files) {
	t.Helper()
	tlsCfg, err := transport.TLSInfo{CertFile: cert.Cert(), KeyFile: cert.Key(), TrustedCAFile: cfg.CAFile}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	u := clientURL(cfg.ClientPort)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{u.String()}, TLS: tlsCfg, DialTimeout: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	if _, err := c.Put(ctx, "/monokube/test", "value"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := c.Get(ctx, "/monokube/test")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "value" {
		t.Fatalf("get = %v, want one key with value", resp.Kvs)
	}
}
