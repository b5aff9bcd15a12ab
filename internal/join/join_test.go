package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	certutil "k8s.io/client-go/util/cert"

	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/testutil"
)

func testCA(t *testing.T) *x509.Certificate {
	t.Helper()
	ca, err := pki.NewCA("test-ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca.Cert
}

func TestTokenRoundTrip(t *testing.T) {
	ca := testCA(t)
	tok, err := NewToken(ca)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseToken(" " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("ParseToken(String()) = %+v, %v; want %+v", got, err, tok)
	}
	other := testCA(t)
	if got.PinnedCA([]*x509.Certificate{other, ca}) != ca || got.PinnedCA([]*x509.Certificate{other}) != nil {
		t.Error("PinnedCA does not tell the pinned CA from another")
	}
}

func TestParseTokenErrors(t *testing.T) {
	good, err := NewToken(testCA(t))
	if err != nil {
		t.Fatal(err)
	}
	hash := good.CAHash
	for _, tc := range []struct{ in, want string }{
		{"abcdef.0123456789abcdef", "not a monokube join token"},
		{"mk1::" + hash, "not a monokube join token"},
		{"mk2::" + hash + "::abcdef.0123456789abcdef", "not a monokube join token"},
		{"mk1::sha256:1234::abcdef.0123456789abcdef", "CA hash"},
		{"mk1::md5:" + strings.Repeat("a", 64) + "::abcdef.0123456789abcdef", "CA hash"},
		{"mk1::" + hash + "::abcdef.0123", "not a bootstrap token"},
		{"mk1::" + hash + "::ABCDEF.0123456789abcdef", "not a bootstrap token"},
	} {
		if _, err := ParseToken(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseToken(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestSecret(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := Secret(tok, Spec{Role: RoleAgent, TTL: 2 * time.Hour, Description: "for worker-1"}, now)
	if s.Name != "bootstrap-token-abcdef" || s.Namespace != "kube-system" || s.Type != "bootstrap.kubernetes.io/token" {
		t.Errorf("secret %s/%s type %s", s.Namespace, s.Name, s.Type)
	}
	want := map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2026-11-25T14:00:00Z",
		"usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
		"auth-extra-groups": NodesGroup, "description": "for worker-1"}
	for k, v := range want {
		if string(s.Data[k]) != v {
			t.Errorf("%s = %q, want %q", k, s.Data[k], v)
		}
	}
	if _, ok := Secret(tok, Spec{Role: RoleAgent}, now).Data["expiration"]; ok {
		t.Error("a token without ttl has an expiration")
	}
	if got := string(Secret(tok, Spec{Role: RoleServer, TTL: time.Hour}, now).Data["auth-extra-groups"]); got != NodesGroup+","+ServersGroup {
		t.Errorf("server token groups = %q, want the nodes' and the servers' groups", got)
	}
}

// List tells agent and server tokens apart by their groups alone.
func TestListRoles(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	client := fake.NewClientset()
	want := map[string]Role{}
	for _, r := range []Role{RoleAgent, RoleServer} {
		tok, err := NewToken(testCA(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := CreateSecret(ctx, client, tok, Spec{Role: r, TTL: r.DefaultTTL()}, now); err != nil {
			t.Fatal(err)
		}
		want[tok.ID] = r
	}
	infos, err := List(ctx, client, now)
	if err != nil || len(infos) != 2 {
		t.Fatalf("List = %v, %v; want two tokens", infos, err)
	}
	for _, i := range infos {
		if i.Role != want[i.ID] {
			t.Errorf("token %s listed as %s, want %s", i.ID, i.Role, want[i.ID])
		}
	}
}

func TestRoles(t *testing.T) {
	for in, want := range map[string]Role{"agent": RoleAgent, "Server": RoleServer, " server ": RoleServer} {
		if r, err := ParseRole(in); err != nil || r != want {
			t.Errorf("ParseRole(%q) = %q, %v; want %q", in, r, err, want)
		}
	}
	if _, err := ParseRole("worker"); err == nil || !strings.Contains(err.Error(), "want agent or server") {
		t.Errorf("ParseRole(worker) = %v", err)
	}
	if RoleServer.DefaultTTL() != time.Hour || RoleAgent.DefaultTTL() != 24*time.Hour {
		t.Errorf("default TTLs: server %s, agent %s; want 1h and 24h", RoleServer.DefaultTTL(), RoleAgent.DefaultTTL())
	}
	for _, tc := range []struct {
		role Role
		ttl  time.Duration
		ok   bool
	}{{RoleAgent, 0, true}, {RoleAgent, -time.Second, false}, {RoleServer, 0, false}, {RoleServer, time.Minute, true}} {
		if err := tc.role.CheckTTL(tc.ttl); (err == nil) != tc.ok {
			t.Errorf("%s token with --ttl %s: %v", tc.role, tc.ttl, err)
		}
	}
}

func TestManifestGolden(t *testing.T) {
	m, err := Manifest(Cluster{
		Server: "https://10.0.0.1:6443", CA: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		Settings: identity.ClusterSettings{
			ClientCA:    []byte("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"),
			ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16"),
			ClusterDNS: netip.MustParseAddr("10.43.0.10"), ClusterDomain: "cluster.local",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, "join.yaml", m)
}

// csr makes a CSR object as requester for a certificate of cn with SANs.
func csr(t *testing.T, signer, requester string, groups []string, cn string, dns []string, ips []string, usages ...certificatesv1.KeyUsage) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var ipAddrs []net.IP
	for _, ip := range ips {
		ipAddrs = append(ipAddrs, net.ParseIP(ip))
	}
	der, err := certutil.MakeCSR(key, &pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}, dns, ipAddrs)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-1"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: der, SignerName: signer, Username: requester, Groups: groups, Usages: usages,
		},
	}
}

func lister(t *testing.T, nodes ...*corev1.Node) listerscorev1.NodeLister {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, n := range nodes {
		if err := idx.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	return listerscorev1.NewNodeLister(idx)
}

func node(name string, addrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		typ := corev1.NodeInternalIP
		if net.ParseIP(a) == nil {
			typ = corev1.NodeHostName
		}
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: typ, Address: a})
	}
	return n
}

// testPolicy is a server at 10.0.0.1 with --tls-san k8s.example.com.
func testPolicy() Policy {
	return Policy{
		ClusterDomain: "cluster.local",
		ServerNames:   []string{"k8s.example.com", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost", "server-1"},
		ServerIPs:     []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.43.0.1"), netip.MustParseAddr("127.0.0.1")},
		CIDRs:         []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16"), netip.MustParsePrefix("10.43.0.0/16")},
	}
}

func TestCheckJoinCSR(t *testing.T) {
	client := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	joiner := []string{"system:bootstrappers", NodesGroup, "system:authenticated"}
	signer := certificatesv1.KubeAPIServerClientKubeletSignerName
	p := testPolicy()
	for _, name := range []string{"fresh", "web-1.example.com"} {
		if got, _, err := CheckJoinCSR(csr(t, signer, "system:bootstrap:abcdef", joiner, "system:node:"+name, nil, nil, client...), p); err != nil || got != name {
			t.Errorf("a new node's join CSR for %s: %q, %v", name, got, err)
		}
	}
	if _, _, err := CheckJoinCSR(csr(t, signer, "system:bootstrap:abcdef", []string{"system:bootstrappers"}, "system:node:fresh", nil, nil, client...), p); err == nil {
		t.Error("a bootstrap token that is not a monokube join token was approved")
	}
	if _, _, err := CheckJoinCSR(csr(t, signer, "system:bootstrap:abcdef", joiner, "admin", nil, nil, client...), p); err == nil {
		t.Error("a join token got a non-node identity")
	}
	// Names that would shadow cluster names in CoreDNS (NodeHosts) or
	// stand for the API server.
	for _, name := range []string{"kubernetes.default.svc.cluster.local", "vault.vault.svc.cluster.local", "cluster.local",
		"KUBERNETES.DEFAULT.SVC.CLUSTER.LOCAL", "1.0.43.10.in-addr.arpa", "localhost", "k8s.example.com", "kubernetes", "server-1", "a.svc"} {
		if _, _, err := CheckJoinCSR(csr(t, signer, "system:bootstrap:abcdef", joiner, "system:node:"+name, nil, nil, client...), p); err == nil {
			t.Errorf("a join token got node name %s", name)
		}
	}
}

func TestCheckServingCSR(t *testing.T) {
	serving := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	nodes := lister(t, node("a", "10.0.0.2", "host-a"), node("b", "10.0.0.3", "host-b"),
		node("evil", "10.0.0.5", "10.43.0.1", "kubernetes.default.svc.cluster.local", "kubernetes", "k8s.example.com",
			"10.0.0.1", "127.0.0.1", "localhost", "10.42.3.4", "db.prod.svc.cluster.local"))
	signer := certificatesv1.KubeletServingSignerName
	asNode := []string{"system:nodes", "system:authenticated"}
	for _, tc := range []struct {
		name      string
		requester string
		cn        string
		dns, ips  []string
		ok        bool
	}{
		{"own names", "system:node:a", "system:node:a", []string{"host-a"}, []string{"10.0.0.2"}, true},
		{"another node's IP", "system:node:a", "system:node:a", nil, []string{"10.0.0.2", "10.0.0.3"}, false},
		{"an IP no node has", "system:node:a", "system:node:a", nil, []string{"10.0.0.9"}, false},
		{"another node's name", "system:node:a", "system:node:a", []string{"host-b"}, []string{"10.0.0.2"}, false},
		{"for another node", "system:node:a", "system:node:b", nil, []string{"10.0.0.3"}, false},
		{"unknown node", "system:node:c", "system:node:c", nil, []string{"10.0.0.4"}, false},
		// The evil node reports the API server's names and addresses as its own.
		{"kubernetes Service IP", "system:node:evil", "system:node:evil", nil, []string{"10.43.0.1"}, false},
		{"kubernetes Service name", "system:node:evil", "system:node:evil", []string{"kubernetes.default.svc.cluster.local"}, nil, false},
		{"short Service name", "system:node:evil", "system:node:evil", []string{"kubernetes"}, nil, false},
		{"a --tls-san", "system:node:evil", "system:node:evil", []string{"k8s.example.com"}, nil, false},
		{"the server IP (--disable-agent)", "system:node:evil", "system:node:evil", nil, []string{"10.0.0.1"}, false},
		{"loopback", "system:node:evil", "system:node:evil", nil, []string{"127.0.0.1"}, false},
		{"localhost", "system:node:evil", "system:node:evil", []string{"localhost"}, nil, false},
		{"a pod IP", "system:node:evil", "system:node:evil", nil, []string{"10.42.3.4"}, false},
		{"a name under the cluster domain", "system:node:evil", "system:node:evil", []string{"db.prod.svc.cluster.local"}, nil, false},
		{"its own IP only", "system:node:evil", "system:node:evil", nil, []string{"10.0.0.5"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckServingCSR(csr(t, signer, tc.requester, asNode, tc.cn, tc.dns, tc.ips, serving...), nodes, testPolicy())
			if (err == nil) != tc.ok {
				t.Errorf("CheckServingCSR = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// During a server CA rotation a token made before pins the old CA:
// TrustedCAs takes the new CA too when the bundle carries the old one's
// certificate of it, and not otherwise; a CA the pinned one does not
// vouch for is never taken.
func TestTrustedCAsFollowVouchedCA(t *testing.T) {
	now := time.Now()
	old, _ := pki.NewCA("old", now)
	next, _ := pki.NewCA("next", now)
	evil, _ := pki.NewCA("evil", now)
	cross, err := old.CrossSign(next.Cert, now)
	if err != nil {
		t.Fatal(err)
	}
	evilCross, _ := evil.CrossSign(next.Cert, now)
	tok, err := NewToken(old.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.TrustedCAs([]*x509.Certificate{next.Cert, old.Cert, cross, evil.Cert}); len(got) != 2 || !got[0].Equal(old.Cert) || !got[1].Equal(next.Cert) {
		t.Errorf("with the old CA's certificate of the new: trusted %d CAs; want the old and the new", len(got))
	}
	if got := tok.TrustedCAs([]*x509.Certificate{next.Cert, old.Cert, evilCross}); len(got) != 1 {
		t.Errorf("with another CA's certificate of the new: trusted %d CAs; want the pinned one alone", len(got))
	}
	if got := tok.TrustedCAs([]*x509.Certificate{next.Cert}); got != nil {
		t.Error("the pinned CA retired: a token that pins it still trusts the bundle")
	}
}

// The server's own token file pinning a CA rotation's old server CA is
// pinned to the new one, secret kept; one that pins no CA of the server
// is refused.
func TestLoadServerTokenRepins(t *testing.T) {
	now := time.Now()
	old, _ := pki.NewCA("old", now)
	next, _ := pki.NewCA("next", now)
	path := filepath.Join(t.TempDir(), "token")
	tok, _ := NewToken(old.Cert)
	if err := os.WriteFile(path, []byte(tok.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _, err := LoadServerToken(path, next.Cert, []*x509.Certificate{next.Cert, old.Cert})
	if err != nil || got.CAHash != CAHash(next.Cert) || got.ID != tok.ID || got.Secret != tok.Secret {
		t.Fatalf("LoadServerToken = %+v, %v; want the same token pinning the new CA", got, err)
	}
	if data, _ := os.ReadFile(path); strings.TrimSpace(string(data)) != got.String() {
		t.Error("the token file still pins the old CA")
	}
	if _, _, err := LoadServerToken(path, old.Cert, []*x509.Certificate{old.Cert}); err == nil {
		t.Error("a token pinning a CA the server no longer has was taken")
	}
}
