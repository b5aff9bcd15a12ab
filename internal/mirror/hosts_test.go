package mirror

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"

	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/testutil"
)

// testHosts is a node's view: two peers (itself first), its own files.
func testHosts(dir string) Hosts {
	return Hosts{Registries: []string{"*", "docker.io", "registry.example:5000"}, Peers: []string{"10.0.0.1:5001", "10.0.0.2:5001"},
		CA: filepath.Join(dir, "kubelet-serving-ca.crt"), ClientCert: filepath.Join(dir, "kubelet-client-current.pem"),
		ClientKey: filepath.Join(dir, "kubelet-client-current.pem")}
}

func TestRenderHostsGolden(t *testing.T) {
	files, err := RenderHosts(testHosts("/var/lib/monokube/agent"))
	if err != nil {
		t.Fatal(err)
	}
	for dir, data := range files {
		testutil.Golden(t, "hosts-"+strings.ReplaceAll(dir, ":", "_"), data)
	}
	pair, err := RenderHosts(Hosts{Registries: []string{"*"}, Peers: []string{"10.0.0.1:5001"}, ClientCert: "/c.crt", ClientKey: "/c.key"})
	if err != nil || !strings.Contains(string(pair["_default"]), `client = [["/c.crt", "/c.key"]]`) {
		t.Errorf("a certificate and key in two files: %v\n%s", err, pair["_default"])
	}
	if _, err := RenderHosts(Hosts{Registries: []string{"docker.io/library"}}); err == nil {
		t.Error("a registry with a path was rendered")
	}
}

// containerd, reading the rendered directory as its config_path, asks
// the peers in order and then the registry: for a registry listed, for
// one that is not (through _default), with the node's client certificate.
func TestRenderHostsAsContainerdReadsThem(t *testing.T) {
	dir := t.TempDir()
	h := testHosts(dir)
	writeNodeFiles(t, h)
	files, err := RenderHosts(h)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "certs.d")
	for name, data := range files {
		if err := os.MkdirAll(filepath.Join(root, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name, "hosts.toml"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hosts := config.ConfigureHosts(context.Background(), config.HostOptions{HostDir: config.HostDirFromRoot(root)})
	for registry, upstream := range map[string]string{"docker.io": "registry-1.docker.io", "quay.io": "quay.io", "registry.example:5000": "registry.example:5000"} {
		got, err := hosts(registry)
		if err != nil {
			t.Fatalf("%s: %v", registry, err)
		}
		want := []string{"10.0.0.1:5001", "10.0.0.2:5001", upstream}
		if len(got) != len(want) {
			t.Fatalf("%s: containerd asks %d hosts, want %v", registry, len(got), want)
		}
		for i, g := range got {
			if g.Host != want[i] || g.Path != "/v2" {
				t.Errorf("%s: host %d is %s%s, want %s/v2", registry, i, g.Host, g.Path, want[i])
			}
		}
		peer := got[0]
		if !peer.Capabilities.Has(docker.HostCapabilityResolve) || !peer.Capabilities.Has(docker.HostCapabilityPull) || peer.Scheme != "https" {
			t.Errorf("%s: the first peer is %s with capabilities %v; want https, pull and resolve", registry, peer.Scheme, peer.Capabilities)
		}
		tr, ok := peer.Client.Transport.(*http.Transport)
		if !ok || tr.TLSClientConfig == nil || len(tr.TLSClientConfig.Certificates) != 1 || tr.TLSClientConfig.RootCAs == nil {
			t.Errorf("%s: the first peer's client presents no client certificate or trusts no CA", registry)
		}
	}
}

// writeNodeFiles makes the CA and the client certificate h names.
func writeNodeFiles(t *testing.T, h Hosts) {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("kubelet-serving", now)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Sign(pki.Spec{CommonName: "system:node:node-1", Organization: []string{"system:nodes"}, Usages: pki.ClientUsage}, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := client.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.CA, pki.CertPEM(ca.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.ClientCert, append(pki.CertPEM(client.Cert), keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
}
