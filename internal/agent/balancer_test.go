package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestKubeconfigsMoveToTheBalancer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubelet.kubeconfig")
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"c": {Server: "https://10.0.0.2:6443", CertificateAuthorityData: []byte("ca")}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"n": {ClientCertificate: "/pki/current.pem"}},
		Contexts:       map[string]*clientcmdapi.Context{"n": {Cluster: "c", AuthInfo: "n"}},
		CurrentContext: "n",
	}
	if err := clientcmd.WriteToFile(kc, path); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if err := pointAt(path, "https://127.0.0.1:6444", "/tls/server-ca.crt", log); err != nil {
		t.Fatal(err)
	}
	got, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Clusters["c"]; c.Server != "https://127.0.0.1:6444" || c.CertificateAuthority != "/tls/server-ca.crt" || c.CertificateAuthorityData != nil {
		t.Errorf("cluster after pointAt: %+v; want the balancer's URL and the CA by its file", c)
	}
	if got.AuthInfos["n"].ClientCertificate != "/pki/current.pem" {
		t.Error("pointAt changed the node's credentials")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after pointAt: %v, %v; want 0600", fi.Mode(), err)
	}
	if err := pointAt(filepath.Join(t.TempDir(), "none"), "https://127.0.0.1:6444", "/tls/server-ca.crt", log); err != nil {
		t.Errorf("a kubeconfig not written yet: %v; want it left alone", err)
	}
}
