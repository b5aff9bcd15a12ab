package apilb

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is an apiserver stand-in: it answers every path with its name,
// and /readyz with 200 while ready.
type backend struct {
	name  string
	ready atomic.Bool
	srv   *httptest.Server
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{name: name}
	b.ready.Store(true)
	b.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !b.ready.Load() {
			http.Error(w, "not ready", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, b.name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "https://") }

// start runs a balancer over backends (the first is the joined one) and
// stops it at the end of the test.
func start(t *testing.T, backends ...*backend) *LB {
	t.Helper()
	var known []string
	for _, b := range backends {
		known = append(known, b.addr())
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: backends[0].srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	lb := New(Config{Listen: "127.0.0.1:0", Joined: known[0], StateFile: filepath.Join(t.TempDir(), "servers.json"),
		ServerCAFile: caFile, Kubeconfig: filepath.Join(t.TempDir(), "none")}, slog.New(slog.DiscardHandler))
	lb.pool.set(known)
	lb.probeEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	if err := lb.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return lb
}

// dialTLS opens a TLS connection through lb, verified as a node's client
// verifies the servers (the test servers' certificate holds 127.0.0.1).
func dialTLS(t *testing.T, lb *LB, b *backend) *tls.Conn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(b.srv.Certificate())
	c, err := tls.Dial("tcp", lb.Addr(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ask sends one request on c and returns the body, or an error once c is
// closed.
func ask(c *tls.Conn) (string, error) {
	if _, err := io.WriteString(c, "GET /name HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// twoServers runs a balancer over two backends and opens a connection
// through it: it returns the balancer, the connection, the backend that
// answered it and the other.
func twoServers(t *testing.T) (lb *LB, c *tls.Conn, used, other *backend) {
	t.Helper()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	lb = start(t, a, b)
	c = dialTLS(t, lb, a)
	got, err := ask(c)
	if err != nil {
		t.Fatal(err)
	}
	if got == "b" {
		return lb, c, b, a
	}
	return lb, c, a, b
}

func TestConnectionsMoveWhenAServerStops(t *testing.T) {
	lb, c, stopped, other := twoServers(t)
	stopped.srv.CloseClientConnections()
	stopped.srv.Listener.Close()
	if _, err := ask(c); err == nil {
		t.Fatal("the connection to a stopped server stays open")
	}
	c = dialTLS(t, lb, other)
	if got, err := ask(c); err != nil || got != other.name {
		t.Errorf("after %s stopped: %q, %v; want %s", stopped.name, got, err, other.name)
	}
	st, err := LoadState(lb.cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != other.addr() {
		t.Errorf("state file: current %q, want %s", st.Current, other.addr())
	}
}

func TestAnUnreadyServerGivesUpItsConnections(t *testing.T) {
	lb, c, unready, other := twoServers(t)
	unready.ready.Store(false) // it keeps accepting, but says it is not ready
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := ask(c); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection to an unready server stays open 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c = dialTLS(t, lb, other)
	if got, err := ask(c); err != nil || got != other.name {
		t.Errorf("after %s turned unready: %q, %v; want %s", unready.name, got, err, other.name)
	}
}

func TestStopsWithConnectionsOpen(t *testing.T) {
	a := newBackend(t, "a")
	lb := New(Config{Listen: "127.0.0.1:0", Joined: a.addr(), StateFile: filepath.Join(t.TempDir(), "s.json"),
		Kubeconfig: filepath.Join(t.TempDir(), "none")}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	if err := lb.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := dialTLS(t, lb, a)
	if _, err := ask(c); err != nil {
		t.Fatal(err)
	}
	cancel() // the client keeps its connection open
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the balancer does not stop while a connection is open")
	}
	if _, err := ask(c); err == nil {
		t.Error("a connection through a stopped balancer still answers")
	}
}

func TestAListenerInUseIsAClearError(t *testing.T) {
	a := newBackend(t, "a")
	lb := New(Config{Listen: a.addr(), Joined: a.addr(), StateFile: filepath.Join(t.TempDir(), "s.json")}, slog.New(slog.DiscardHandler))
	err := lb.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "apiserver load balancer") {
		t.Errorf("Run on a port in use: %v; want an error naming the load balancer", err)
	}
}

func TestARestartStartsFromTheSavedServers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "servers.json")
	first := New(Config{Joined: "s1:6443", StateFile: file}, slog.New(slog.DiscardHandler))
	first.pool.set([]string{"s2:6443", "s3:6443"})
	first.save()
	again := New(Config{Joined: "s1:6443", StateFile: file}, slog.New(slog.DiscardHandler))
	if got := strings.Join(again.pool.addrs(), ","); got != "s1:6443,s2:6443,s3:6443" {
		t.Errorf("after a restart the node knows %s; want the saved servers and the joined one", got)
	}
}

// TestPreferLearnAndProbeHooks is the etcd balancer's set-up: the joined
// server first whenever its probe passes, the others from Learn.
func TestPreferLearnAndProbeHooks(t *testing.T) {
	local, other := newBackend(t, "local"), newBackend(t, "other")
	var localUp atomic.Bool
	localUp.Store(true)
	learned := make(chan struct{})
	lb := New(Config{
		What: "etcd member", Listen: "127.0.0.1:0", Joined: local.addr(), Prefer: true,
		Probe: func(_ context.Context, addr string) error {
			if addr == local.addr() && !localUp.Load() {
				return errRefused
			}
			return nil
		},
		Learn: func(ctx context.Context, set func([]string)) {
			set([]string{other.addr()})
			close(learned)
			<-ctx.Done()
		},
	}, slog.New(slog.DiscardHandler))
	lb.probeEvery = 20 * time.Millisecond
	if got := lb.Name(); got != "etcd-member-lb" {
		t.Errorf("Name() = %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("balancer: %v", err)
		}
	})
	if err := lb.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	<-learned
	answer := func() string {
		got, err := ask(dialTLS(t, lb, local))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for range 3 {
		if got := answer(); got != "local" {
			t.Fatalf("a connection went to %s; want the preferred server while it is healthy", got)
		}
	}
	localUp.Store(false)
	waitFor(t, func() bool { return answer() == "other" }, "a connection goes to the other server once the preferred one's probe fails")
	localUp.Store(true)
	waitFor(t, func() bool { return answer() == "local" }, "connections go back to the preferred server once it answers")
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
