package addons

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/monokube/monokube/internal/testutil"
	"github.com/monokube/monokube/manifests"
)

func settings() Settings {
	return Settings{
		ClusterDNS:      netip.MustParseAddr("10.43.0.10"),
		ClusterDomain:   "cluster.local",
		StoragePath:     "/var/lib/monokube/storage",
		KubeletCA:       "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		MetricsCert:     "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
		MetricsKey:      "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n",
		MetricsCABundle: "LS0tLS1CRUdJTg==",
		Images: Images{
			CoreDNS:       "monokube.local/coredns:v1.15.0",
			LocalPath:     "monokube.local/local-path-provisioner:v0.0.30",
			MetricsServer: "monokube.local/metrics-server:v0.9.0",
			Busybox:       "monokube.local/busybox:1.35",
		},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, name := range manifests.Names() {
		t.Run(name, func(t *testing.T) {
			got, err := Render(name, settings())
			if err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, name+".yaml", got)
		})
	}
}

// TestManifestsRunOnlyEmbeddedImages decodes every rendered object and checks
// that each container runs one of the embedded images and never pulls.
func TestManifestsRunOnlyEmbeddedImages(t *testing.T) {
	s := settings()
	want := []string{s.Images.CoreDNS, s.Images.LocalPath, s.Images.MetricsServer}
	var used []string
	for _, name := range manifests.Names() {
		data, err := Render(name, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range decode(t, data) {
			if obj.GetKind() != "Deployment" {
				continue
			}
			containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
			for _, c := range containers {
				c := c.(map[string]any)
				if c["imagePullPolicy"] != "Never" {
					t.Errorf("%s/%s container %v: imagePullPolicy %v, want Never", name, obj.GetName(), c["name"], c["imagePullPolicy"])
				}
				used = append(used, c["image"].(string))
			}
		}
	}
	slices.Sort(used)
	slices.Sort(want)
	if !slices.Equal(used, want) {
		t.Errorf("deployments run images %v, want exactly %v", used, want)
	}
}

func TestRenderUsesSettings(t *testing.T) {
	s := settings()
	s.ClusterDNS = netip.MustParseAddr("10.96.0.53")
	s.ClusterDomain = "corp.example"
	s.StoragePath = "/srv/volumes"
	for name, wants := range map[string][]string{
		CoreDNS:      {"clusterIP: 10.96.0.53", "kubernetes corp.example in-addr.arpa"},
		LocalStorage: {`"paths": ["/srv/volumes"]`, "image: monokube.local/busybox:1.35"},
	} {
		data, err := Render(name, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			if !bytes.Contains(data, []byte(w)) {
				t.Errorf("%s does not contain %q", name, w)
			}
		}
	}
}

func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if obj.Object == nil {
			continue
		}
		if obj.GetKind() == "" || obj.GetName() == "" {
			t.Fatalf("object without kind or name: %v", obj.Object)
		}
		out = append(out, obj)
	}
}

func TestSync(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	if err := Sync(dir, settings(), nil, log); err != nil {
		t.Fatal(err)
	}
	for _, name := range manifests.Names() {
		if _, err := os.Stat(filepath.Join(dir, name+".yaml")); err != nil {
			t.Errorf("enabled addon %s not written: %v", name, err)
		}
	}
	// A user's edit under .skip survives; a disabled addon's file goes.
	edited := filepath.Join(dir, CoreDNS+".yaml")
	if err := os.WriteFile(edited, []byte("# mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(edited+".skip", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Sync(dir, settings(), []string{MetricsServer, CoreDNS}, log); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(edited); string(got) != "# mine\n" {
		t.Errorf("skipped coredns.yaml was rewritten: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, MetricsServer+".yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("disabled metrics-server.yaml still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, LocalStorage+".yaml")); err != nil {
		t.Errorf("local-storage.yaml gone: %v", err)
	}
}

func TestHostsFile(t *testing.T) {
	node := func(name string, addrs ...corev1.NodeAddress) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
	}
	ip := func(a string) corev1.NodeAddress { return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a} }
	host := corev1.NodeAddress{Type: corev1.NodeHostName, Address: "ignored"}
	got := HostsFile([]*corev1.Node{
		node("worker-b", ip("10.0.0.3"), host),
		node("joining"),
		node("server-a", ip("10.0.0.9"), ip("fd00::9")),
	})
	want := strings.Join([]string{"10.0.0.9 server-a", "fd00::9 server-a", "10.0.0.3 worker-b"}, "\n") + "\n"
	if got != want {
		t.Errorf("HostsFile =\n%s\nwant\n%s", got, want)
	}
	if got := HostsFile(nil); got != "" {
		t.Errorf("HostsFile(nil) = %q, want empty", got)
	}
	// Hostile nodes: names that would shadow a Service, an external name or
	// localhost, and addresses that are not IPs, are never published.
	hostile := HostsFile([]*corev1.Node{
		node("kubernetes.default.svc.cluster.local", ip("10.0.0.66")),
		node("vault.vault.svc.cluster.local", ip("10.0.0.66")),
		node("github.com", ip("10.0.0.66")),
		node("localhost", ip("10.0.0.66")),
		node("evil", ip("10.0.0.66 kubernetes.default.svc.cluster.local"), ip("10.0.0.66\n10.0.0.67 github.com"), ip("not-an-ip")),
		node("good", ip("10.0.0.4")),
	})
	if hostile != "10.0.0.4 good\n" {
		t.Errorf("HostsFile of hostile nodes =\n%s\nwant only the good node", hostile)
	}
}
