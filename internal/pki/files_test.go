package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/keyutil"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}

func TestEnsureCAIsStable(t *testing.T) {
	f := Files(filepath.Join(t.TempDir(), "pki", "ca"))
	now := time.Now()
	first, err := EnsureCA(f, "test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := readFile(t, f.Cert()), readFile(t, f.Key())
	checkMode(t, f.Key(), 0o600)
	checkMode(t, f.Cert(), 0o644)

	second, err := EnsureCA(f, "other-name", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !first.Cert.Equal(second.Cert) {
		t.Error("second EnsureCA returned a different certificate")
	}
	if !bytes.Equal(readFile(t, f.Cert()), certPEM) || !bytes.Equal(readFile(t, f.Key()), keyPEM) {
		t.Error("second EnsureCA rewrote the CA files")
	}
}

func TestEnsureCARejectsLeaf(t *testing.T) {
	dir := t.TempDir()
	ca, err := EnsureCA(Files(filepath.Join(dir, "ca")), "test-ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf := Files(filepath.Join(dir, "leaf"))
	if _, err := EnsureLeaf(leaf, ca, serverSpec(), DefaultLifetime(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCA(leaf, "test-ca", time.Now()); err == nil {
		t.Error("EnsureCA accepted a leaf certificate as CA")
	}
}

func TestEnsureLeaf(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := EnsureCA(Files(filepath.Join(dir, "ca")), "test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	f := Files(filepath.Join(dir, "apiserver"))
	changed := serverSpec()
	changed.DNSNames = append(changed.DNSNames, "api.example.com")
	otherCA := newCA(t, now)

	steps := []struct {
		name       string
		ca         *KeyPair
		spec       Spec
		now        time.Time
		wantIssued bool
	}{
		{"first call issues", ca, serverSpec(), now, true},
		{"same spec keeps", ca, serverSpec(), now.Add(time.Hour), false},
		{"changed spec re-issues", ca, changed, now, true},
		{"changed spec kept", ca, changed, now, false},
		{"new CA re-issues", otherCA, changed, now, true},
		{"near expiry re-issues", otherCA, changed, now.Add(LeafValidity - RenewBefore + time.Hour), true},
	}
	var certPEM, keyPEM []byte
	for _, s := range steps {
		// Steps depend on each other, so a failure stops the sequence.
		if !t.Run(s.name, func(t *testing.T) {
			issued, err := EnsureLeaf(f, s.ca, s.spec, DefaultLifetime(), s.now)
			if err != nil {
				t.Fatal(err)
			}
			if issued != s.wantIssued {
				t.Fatalf("EnsureLeaf issued = %v, want %v", issued, s.wantIssued)
			}
			newCert, newKey := readFile(t, f.Cert()), readFile(t, f.Key())
			sameFiles := bytes.Equal(newCert, certPEM) && bytes.Equal(newKey, keyPEM)
			if sameFiles == issued {
				t.Errorf("issued = %v but files unchanged = %v", issued, sameFiles)
			}
			certPEM, keyPEM = newCert, newKey
			checkMode(t, f.Key(), 0o600)
			checkMode(t, f.Cert(), 0o644)
			kp, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if !Matches(kp.Cert, s.ca.Cert, s.spec, DefaultLifetime(), s.now) {
				t.Error("certificate on disk does not match the spec")
			}
		}) {
			return
		}
	}
}

func TestEnsureLeafCorruptFile(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, time.Now())
	f := Files(filepath.Join(dir, "leaf"))
	if err := os.WriteFile(f.Cert(), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key(), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureLeaf(f, ca, serverSpec(), DefaultLifetime(), time.Now()); err == nil {
		t.Error("EnsureLeaf silently replaced an unparsable certificate")
	}
}

func TestEnsureSigningKey(t *testing.T) {
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "sa", "sa.key"), filepath.Join(dir, "sa", "sa.pub")
	if err := EnsureSigningKey(key, pub); err != nil {
		t.Fatal(err)
	}
	checkMode(t, key, 0o600)
	checkMode(t, pub, 0o644)
	keyPEM, pubPEM := readFile(t, key), readFile(t, pub)

	priv, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pubPEM)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public key file is not a PUBLIC KEY PEM block:\n%s", pubPEM)
	}
	pubKey, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		t.Fatalf("private key %T is not a crypto.Signer", priv)
	}
	if k, ok := pubKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(signer.Public()) {
		t.Error("public key does not belong to the private key")
	}

	if err := EnsureSigningKey(key, pub); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, key), keyPEM) || !bytes.Equal(readFile(t, pub), pubPEM) {
		t.Error("second EnsureSigningKey changed the files")
	}
}

func TestKubeconfig(t *testing.T) {
	now := time.Now()
	ca := newCA(t, now)
	client, err := ca.Sign(Spec{CommonName: "admin", Organization: []string{"system:masters"}, Usages: ClientUsage}, now)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := CertPEM(ca.Cert)
	data, err := Kubeconfig("https://10.0.0.5:6443", "monokube", caPEM, client)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatalf("clientcmd.Load: %v\n%s", err, data)
	}
	if cfg.CurrentContext != "monokube" {
		t.Errorf("current context %q, want monokube", cfg.CurrentContext)
	}
	cluster, user := cfg.Clusters["monokube"], cfg.AuthInfos["monokube"]
	if cluster == nil || user == nil {
		t.Fatalf("kubeconfig lacks cluster or user monokube:\n%s", data)
	}
	if cluster.Server != "https://10.0.0.5:6443" {
		t.Errorf("server %q", cluster.Server)
	}
	if !bytes.Equal(cluster.CertificateAuthorityData, caPEM) {
		t.Error("CA data differs from the CA certificate")
	}
	if !bytes.Equal(user.ClientCertificateData, CertPEM(client.Cert)) {
		t.Error("client certificate data differs from the client certificate")
	}
	wantKey, err := client.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(user.ClientKeyData, wantKey) {
		t.Error("client key data differs from the client key")
	}
	if _, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig(); err != nil {
		t.Errorf("kubeconfig does not give a client config: %v", err)
	}
}

// A key and a certificate of two different pairs (a kill between Write's
// two renames) are told apart: a leaf is issued again, a CA refused.
func TestMismatchedPair(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := EnsureCA(Files(filepath.Join(dir, "ca")), "test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := Files(filepath.Join(dir, "leaf"))
	if _, err := EnsureLeaf(leaf, ca, serverSpec(), DefaultLifetime(), now); err != nil {
		t.Fatal(err)
	}
	other, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, err := keyutil.MarshalPrivateKeyToPEM(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leaf.Key(), otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(leaf); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Load of a mismatched pair = %v, want ErrMismatch", err)
	}
	if issued, err := EnsureLeaf(leaf, ca, serverSpec(), DefaultLifetime(), now); err != nil || !issued {
		t.Fatalf("EnsureLeaf over a mismatched pair = %v, %v; want issued again", issued, err)
	}
	if _, err := Load(leaf); err != nil {
		t.Errorf("after re-issue: %v", err)
	}
	caFiles := Files(filepath.Join(dir, "ca"))
	if err := os.WriteFile(caFiles.Key(), otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCA(caFiles, "test-ca", now); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "restore") {
		t.Errorf("EnsureCA over a mismatched pair = %v, want a refusal that says to restore", err)
	}
}

// A lost public key is written again from the private key, never a new pair.
func TestEnsureSigningKeyRestoresPub(t *testing.T) {
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := EnsureSigningKey(key, pub); err != nil {
		t.Fatal(err)
	}
	keyPEM, pubPEM := readFile(t, key), readFile(t, pub)
	if err := os.Remove(pub); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSigningKey(key, pub); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, key), keyPEM) || !bytes.Equal(readFile(t, pub), pubPEM) {
		t.Error("the public key was not restored from the private key")
	}
}
