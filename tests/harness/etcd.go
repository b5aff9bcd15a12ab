package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// LocalEtcd is a client of the node's embedded etcd on loopback, with the
// apiserver's etcd client certificate: what a test reads etcd with behind
// the apiserver's back. It is closed when tb ends.
func (n *Node) LocalEtcd(tb testing.TB) *clientv3.Client {
	tb.Helper()
	dir := filepath.Join(n.DataDir, "server", "tls", "etcd")
	tlsCfg, err := transport.TLSInfo{
		CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key"),
		TrustedCAFile: filepath.Join(dir, "server-ca.crt"),
	}.ClientConfig()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"https://127.0.0.1:2379"}, TLS: tlsCfg, DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return n.NS.DialContext(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// WaitEtcdVoters waits until etcd, asked through n, has exactly the named
// members, all healthy voters.
func (n *Node) WaitEtcdVoters(tb testing.TB, timeout time.Duration, names ...string) {
	tb.Helper()
	n.WaitFor(timeout, fmt.Sprintf("etcd members %v healthy voters", names), func(context.Context) (bool, error) {
		ms, err := n.EtcdMembers()
		if err != nil || len(ms) != len(names) {
			return false, fmt.Errorf("%+v (%w)", ms, err)
		}
		for _, m := range ms {
			if m.Learner || !m.Healthy || !slices.Contains(names, m.Name) {
				return false, fmt.Errorf("%+v", ms)
			}
		}
		return true, nil
	})
}

// EtcdAccepts asks n's etcd member for its version on its client port
// (mutual TLS: etcd wants a client certificate of a CA it trusts) with
// cert, trusting roots to serve it; nil if it answers. cert is sent even
// if etcd does not name its CA among those it accepts (Go's client would
// otherwise send none): etcd is what must refuse it.
func (n *Node) EtcdAccepts(cert tls.Certificate, roots ...*x509.Certificate) error {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	tr := &http.Transport{DialContext: n.NS.DialContext, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:2379/version", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
