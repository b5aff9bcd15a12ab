package join

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/monokube/monokube/internal/pki"
)

// fakeServer serves cluster-info as a monokube server would, signed with
// signer's secret, over TLS with a serving certificate from ca.
func fakeServer(t *testing.T, signer Token) (*httptest.Server, Token) {
	t.Helper()
	srv := httptest.NewTLSServer(nil)
	t.Cleanup(srv.Close)
	caPEM := pki.CertPEM(srv.Certificate())
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
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/kube-public/configmaps/cluster-info" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cm)
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
	// With the right token, discovery gets as far as reading the settings,
	// which this fake server refuses.
	if _, err := Discover(t.Context(), srv.URL, good, quick, log); err == nil || !strings.Contains(err.Error(), "read cluster settings") {
		t.Errorf("Discover with the right token = %v, want it to pass the checks and fail at the settings", err)
	}
}
