//go:build e2e

package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/monokube/monokube/tests/harness"
)

// etcdGet reads key straight from the node's embedded etcd with the
// apiserver's client certificate, bypassing the apiserver.
func etcdGet(t *testing.T, n *harness.Node, key string) string {
	t.Helper()
	c := n.LocalEtcd(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("etcd get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("etcd has no key %s", key)
	}
	return string(resp.Kvs[0].Value)
}

// etcdClient dials the node's etcd at ip on port with tlsCfg.
func etcdClient(n *harness.Node, ip, port string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: []string{"https://" + net.JoinHostPort(ip, port)}, TLS: tlsCfg, DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return n.NS.DialContext(ctx, "tcp", addr)
		})},
	})
}

// checkEtcdMembers: `monokube etcd members` lists the one member, a healthy
// voter and the leader, with the node's own credentials, as a table and as
// JSON, and says that the apiserver uses it through its balancer.
func checkEtcdMembers(t *testing.T, n *harness.Node) {
	r := n.Exec(time.Minute, harness.Options{}, "etcd", "members")
	table, trailer, _ := strings.Cut(strings.TrimSpace(r.Stdout), "\n\n")
	lines := strings.Split(table, "\n")
	if r.Code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("etcd members: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if want := "reaches etcd through 127.0.0.1:2399 (1 members known), now this server's own member"; !strings.Contains(trailer, want) {
		t.Errorf("etcd members: %q after the table, want %q", trailer, want)
	}
	f := strings.Fields(lines[1])
	if len(f) < 7 || f[2] != "voter" || f[3] != "healthy" || f[4] != "*" || !strings.Contains(f[5], n.NS.IP+":2380") {
		t.Errorf("etcd members row %q: want a healthy voter, the leader, at the node IP", lines[1])
	}
	r = n.Exec(time.Minute, harness.Options{}, "etcd", "members", "-o", "json")
	var ms []struct {
		Name    string
		Leader  bool
		Healthy bool
		Learner bool
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil || len(ms) != 1 || !ms[0].Leader || !ms[0].Healthy || ms[0].Learner || ms[0].Name != f[0] {
		t.Errorf("etcd members -o json = %s (%v)", r.Stdout, err)
	}
}
