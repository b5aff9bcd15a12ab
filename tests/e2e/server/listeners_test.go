//go:build e2e

package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/monokube/monokube/tests/harness"
)

// checkListeners: the controller-manager, the scheduler and the
// apiserver's etcd balancer are not on the node IP at all, and etcd, on
// loopback and on the node IP (where other servers reach it), and through
// the balancer, refuses clients without a certificate of its own CA. (The
// node's ports: tests/e2e/node.)
func checkListeners(t *testing.T, n *harness.Node) {
	for port, what := range map[string]string{"10257": "controller-manager", "10259": "scheduler", "2399": "etcd balancer"} {
		if harness.Answers(t.Context(), n, port) {
			t.Errorf("%s port %s answers on the node IP %s", what, port, n.NS.IP)
		}
	}
	t.Run("etcd refuses foreign clients", func(t *testing.T) { checkEtcdRefuses(t, n) })
}

// checkEtcdRefuses: a client without a certificate, and one whose
// certificate comes from another CA, get nothing from etcd.
func checkEtcdRefuses(t *testing.T, n *harness.Node) {
	ca := filepath.Join(n.DataDir, "server/tls/etcd/server-ca.crt")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "foreign.crt"), filepath.Join(dir, "foreign.key")
	writeForeignClientCert(t, certFile, keyFile)
	if !harness.Answers(t.Context(), n, "2379") {
		t.Errorf("etcd's client port does not answer on the node IP %s: other servers cannot join", n.NS.IP)
	}
	for name, info := range map[string]transport.TLSInfo{
		"no certificate": {TrustedCAFile: ca},
		"foreign CA":     {TrustedCAFile: ca, CertFile: certFile, KeyFile: keyFile},
	} {
		cfg, err := info.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range [][2]string{{"127.0.0.1", "2379"}, {n.NS.IP, "2379"}, {"127.0.0.1", "2399"}} {
			addr := at[0] + ":" + at[1]
			c, err := etcdClient(n, at[0], at[1], cfg)
			if err != nil {
				continue // refused at dial: as wanted
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			_, err = c.Get(ctx, "/registry/namespaces/default")
			cancel()
			c.Close()
			if err == nil {
				t.Errorf("etcd on %s answered a client with %s", addr, name)
			}
		}
	}
}

// writeForeignClientCert writes a client certificate and key signed by a
// fresh CA that etcd has never seen.
func writeForeignClientCert(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "foreign-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "etcd-client"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pemBlock("CERTIFICATE", der), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pemBlock("EC PRIVATE KEY", keyDER), 0o600); err != nil {
		t.Fatal(err)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
