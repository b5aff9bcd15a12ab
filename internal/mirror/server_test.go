package mirror

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/pki"
)

// certs are a cluster's CAs and the certificates a test presents.
type certs struct {
	dir                                 string
	serverCA                            *x509.Certificate
	node, admin, stranger, wrongSubject tls.Certificate
}

func newCerts(t *testing.T) certs {
	t.Helper()
	now := time.Now()
	dir := t.TempDir()
	mustCA := func(name string) *pki.KeyPair {
		ca, err := pki.NewCA(name, now)
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	serverCA, clientCA, otherCA := mustCA("server"), mustCA("client"), mustCA("other")
	write := func(name string, kp *pki.KeyPair) {
		if err := pki.Write(pki.Files(filepath.Join(dir, name)), kp); err != nil {
			t.Fatal(err)
		}
	}
	sign := func(ca *pki.KeyPair, spec pki.Spec) tls.Certificate {
		kp, err := ca.Sign(spec, now)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, _ := kp.KeyPEM()
		cert, err := tls.X509KeyPair(pki.CertPEM(kp.Cert), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	serving, err := serverCA.Sign(pki.Spec{CommonName: "node-1", Usages: pki.ServerUsage, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	write("serving", serving)
	write("client-ca", clientCA)
	nodeSpec := pki.Spec{CommonName: "system:node:node-2", Organization: []string{"system:nodes"}, Usages: pki.ClientUsage}
	return certs{
		dir: dir, serverCA: serverCA.Cert,
		node:         sign(clientCA, nodeSpec),
		admin:        sign(clientCA, pki.Spec{CommonName: "monokube-admin", Organization: []string{"system:masters"}, Usages: pki.ClientUsage}),
		stranger:     sign(otherCA, nodeSpec),
		wrongSubject: sign(clientCA, pki.Spec{CommonName: "system:node:node-2", Usages: pki.ClientUsage}),
	}
}

// serve runs a Server of an empty store on loopback and returns its URL.
func serve(t *testing.T, c certs) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	s := &Server{Cert: filepath.Join(c.dir, "serving.crt"), Key: filepath.Join(c.dir, "serving.key"), ClientCA: filepath.Join(c.dir, "client-ca.crt"),
		Handler: &Handler{Store: &fakeStore{}, Log: log}, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "https://" + l.Addr().String()
}

// get asks url/v2/ presenting cert (none if nil).
func get(t *testing.T, c certs, url string, cert *tls.Certificate) (int, error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(c.serverCA)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url + "/v2/")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Only a node's client certificate of the cluster's client CA is served;
// a client without one, or with one of another CA, fails the handshake;
// an admin's or a certificate not in system:nodes gets 403.
func TestServerServesNodesOnly(t *testing.T) {
	c := newCerts(t)
	url := serve(t, c)
	if code, err := get(t, c, url, &c.node); err != nil || code != http.StatusOK {
		t.Errorf("a node's certificate: %d %v; want 200", code, err)
	}
	for what, cert := range map[string]*tls.Certificate{"no certificate": nil, "another CA's node certificate": &c.stranger} {
		if code, err := get(t, c, url, cert); err == nil {
			t.Errorf("%s: %d; want the handshake refused", what, code)
		} else if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: %v; want a certificate error", what, err)
		}
	}
	for what, cert := range map[string]*tls.Certificate{"the admin's certificate": &c.admin, "a node name outside system:nodes": &c.wrongSubject} {
		if code, err := get(t, c, url, cert); err != nil || code != http.StatusForbidden {
			t.Errorf("%s: %d %v; want 403", what, code, err)
		}
	}
}
