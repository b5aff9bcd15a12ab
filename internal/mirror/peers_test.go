package mirror

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name, ip string, isReady bool) *corev1.Node {
	status := corev1.ConditionFalse
	if isReady {
		status = corev1.ConditionTrue
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}}}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	}
	return n
}

// This node first, Ready or not; then the Ready ones by name from after
// this one round; none without an address.
func TestPeerAddrs(t *testing.T) {
	nodes := []*corev1.Node{node("d", "10.0.0.4", true), node("a", "10.0.0.1", true), node("c", "10.0.0.3", false),
		node("b", "10.0.0.2", false), node("e", "", true), node("f", "fd00::6", true)}
	for self, want := range map[string][]string{
		"b": {"10.0.0.2:5001", "10.0.0.4:5001", "[fd00::6]:5001", "10.0.0.1:5001"},
		"f": {"[fd00::6]:5001", "10.0.0.1:5001", "10.0.0.4:5001"},
		"x": {"10.0.0.1:5001", "10.0.0.4:5001", "[fd00::6]:5001"},
	} {
		if got := PeerAddrs(nodes, self); !slices.Equal(got, want) {
			t.Errorf("PeerAddrs for %s = %v, want %v", self, got, want)
		}
	}
}

// Write keeps the directory what the hosts say: a registry dropped from
// the list loses its directory, a directory monokube did not write stays.
func TestPeersWrite(t *testing.T) {
	dir := t.TempDir()
	p := &Peers{Dir: dir, Hosts: Hosts{Registries: []string{"*", "docker.io"}, CA: "/ca.crt", ClientCert: "/c.pem", ClientKey: "/c.pem"}}
	if err := p.Write([]string{"10.0.0.1:5001"}); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "quay.io", "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(theirs), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(theirs, []byte("server = \"https://quay.io\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Hosts.Registries = []string{"*"}
	if err := p.Write([]string{"10.0.0.1:5001", "10.0.0.2:5001"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"_default", "quay.io"}) {
		t.Errorf("after docker.io left the list: %v; want _default and the directory monokube did not write", names)
	}
	data, err := os.ReadFile(filepath.Join(dir, "_default", "hosts.toml"))
	if err != nil || !strings.Contains(string(data), "10.0.0.2:5001") {
		t.Errorf("_default/hosts.toml: %v\n%s", err, data)
	}
	if fi, err := os.Stat(filepath.Join(dir, "_default", "hosts.toml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("hosts.toml mode: %v %v, want 0600", fi.Mode(), err)
	}
}

// Run follows the nodes: a node that becomes Ready is added.
func TestPeersRun(t *testing.T) {
	dir := t.TempDir()
	client := fake.NewClientset(node("a", "10.0.0.1", true), node("b", "10.0.0.2", false))
	p := &Peers{Client: client, Node: "a", Dir: dir, Log: slog.New(slog.DiscardHandler),
		Hosts: Hosts{Registries: []string{"*"}, CA: "/ca.crt", ClientCert: "/c.pem", ClientKey: "/c.pem"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	hosts := filepath.Join(dir, "_default", "hosts.toml")
	waitFile(t, hosts, "10.0.0.1:5001")
	if data, _ := os.ReadFile(hosts); strings.Contains(string(data), "10.0.0.2") {
		t.Error("a node not Ready is listed")
	}
	if _, err := client.CoreV1().Nodes().UpdateStatus(context.Background(), node("b", "10.0.0.2", true), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFile(t, hosts, "10.0.0.2:5001")
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %s:\n%s", path, want, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
