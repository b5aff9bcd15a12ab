package join

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/pki"
)

// fakeServer serves cluster-info as a monokube server would, signed with
// signer's secret, over TLS with a self-signed serving certificate, which
// cluster-info names as the CA, after extraCAs. With the token it also
// serves the cluster settings.
func fakeServer(t *testing.T, signer Token, extraCAs ...[]byte) (*httptest.Server, Token) {
	t.Helper()
	return fakeServerWith(t, signer, testSettings(t).Encode(), extraCAs...)
}

// testSettings are a cluster's settings, with a client CA of its own.
func testSettings(t *testing.T) identity.ClusterSettings {
	t.Helper()
	ca, err := pki.NewCA("test-client-ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return identity.ClusterSettings{
		ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16"),
		ClusterDNS: netip.MustParseAddr("10.43.0.10"), ClusterDomain: "cluster.local", ClientCA: pki.CertPEM(ca.Cert),
	}
}

// fakeServerWith is fakeServer with the given settings data.
func fakeServerWith(t *testing.T, signer Token, settingsData map[string]string, extraCAs ...[]byte) (*httptest.Server, Token) {
	t.Helper()
	srv := httptest.NewTLSServer(nil)
	t.Cleanup(srv.Close)
	caPEM := append(bytes.Join(extraCAs, nil), pki.CertPEM(srv.Certificate())...)
	kubeconfig, err := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{"": {Server: srv.URL, CertificateAuthorityData: caPEM}}})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jws.ComputeDetachedSignature(string(kubeconfig), signer.ID, signer.Secret)
	if err != nil {
		t.Fatal(err)
	}
	cm := corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(kubeconfig), bootstrapapi.JWSSignatureKeyPrefix + signer.ID: sig},
	}
	settings := corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: SettingsConfigMap, Namespace: "kube-system"},
		Data:       settingsData,
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/namespaces/kube-public/configmaps/cluster-info":
			_ = json.NewEncoder(w).Encode(cm)
		case r.URL.Path == "/api/v1/namespaces/kube-system/configmaps/"+SettingsConfigMap && r.Header.Get("Authorization") == "Bearer "+signer.Bootstrap():
			_ = json.NewEncoder(w).Encode(settings)
		default:
			http.Error(w, "forbidden", http.StatusForbidden)
		}
	})
	good := signer
	good.CAHash = CAHash(srv.Certificate())
	return srv, good
}

func TestDiscoverRefusals(t *testing.T) {
	signer := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	srv, good := fakeServer(t, signer)
	quick := Patience{Unreachable: time.Second, Unsigned: time.Second}
	log := slog.New(slog.DiscardHandler)

	wrongSecret := good
	wrongSecret.Secret = "ffffffffffffffff"
	otherCA := good
	otherCA.CAHash = "sha256:" + strings.Repeat("0", 64)
	unknown := good
	unknown.ID = "zzzzzz"
	for _, tc := range []struct {
		name   string
		server string
		token  Token
		want   string
	}{
		{"wrong secret", srv.URL, wrongSecret, "secret is wrong"},
		{"CA of another cluster", srv.URL, otherCA, "does not match the token's CA hash"},
		{"unknown token", srv.URL, unknown, "does not know token zzzzzz"},
		{"unreachable server", "https://127.0.0.1:1", good, "cannot reach the server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Discover(t.Context(), tc.server, tc.token, quick, log)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Discover = %v, want an error saying %q", err, tc.want)
			}
		})
	}
	d, err := Discover(t.Context(), srv.URL, good, quick, log)
	if err != nil || d.Settings.ClusterDomain != "cluster.local" || d.Settings.ClusterCIDR != netip.MustParsePrefix("10.42.0.0/16") {
		t.Errorf("Discover with the right token = %+v, %v; want the settings", d, err)
	}
}

// Settings that do not decode stop the join before anything is written,
// naming the key.
func TestDiscoverRefusesInvalidSettings(t *testing.T) {
	data := testSettings(t).Encode()
	data["cluster-cidr"] = "10.42.0.0"
	srv, good := fakeServerWith(t, Token{ID: "abcdef", Secret: "0123456789abcdef"}, data)
	_, err := Discover(t.Context(), srv.URL, good, Patience{Unreachable: time.Second, Unsigned: time.Second}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "cluster-cidr") || !strings.Contains(err.Error(), "cannot join") {
		t.Errorf("Discover = %v, want a refusal naming cluster-cidr", err)
	}
}

// TestDiscoverTrustsOnlyThePinnedCA: a cluster-info that lists a second CA
// beside the pinned one (anyone with the token secret can sign such a
// bundle) yields only the pinned CA.
func TestDiscoverTrustsOnlyThePinnedCA(t *testing.T) {
	evil, err := pki.NewCA("evil", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, good := fakeServer(t, Token{ID: "abcdef", Secret: "0123456789abcdef"}, pki.CertPEM(evil.Cert))
	d, err := Discover(t.Context(), srv.URL, good, Patience{Unreachable: time.Second, Unsigned: time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := certutil.ParseCertsPEM(d.CA)
	if err != nil || len(certs) != 1 || !certs[0].Equal(srv.Certificate()) {
		t.Errorf("discovered CA bundle has %d certificates (%v), want only the pinned one", len(certs), err)
	}
}

// TestDiscoverBoundsUnverifiedRead: a server that streams an endless
// cluster-info is cut off, not read into memory.
func TestDiscoverBoundsUnverifiedRead(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte(" "), 64<<10)
		for i := 0; i < 64; i++ { // 4 MiB, bounded
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	_, err := Discover(t.Context(), srv.URL, Token{ID: "abcdef", Secret: "0123456789abcdef", CAHash: "sha256:" + strings.Repeat("0", 64)},
		Patience{Unreachable: 0, Unsigned: 0}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Discover = %v, want a refusal of the oversized cluster-info", err)
	}
}
