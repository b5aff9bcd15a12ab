package etcd

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BalancerPort is where a server's apiserver reaches etcd: a load balancer
// on loopback (apilb, with Prefer) that carries each connection to the
// local member while it answers and to another member otherwise. TLS
// stays end to end: every member's serving certificate holds 127.0.0.1.
const BalancerPort = 2399

// BalancedURL is the apiserver's --etcd-servers: the balancer.
func BalancedURL() string {
	u := clientURL(BalancerPort)
	return u.String()
}

// LocalAddr is the host:port of the local member's client listener on
// loopback, the balancer's first choice.
func LocalAddr() string { return clientURL(ClientPort).Host }

// followEvery is how often FollowMembers lists the members.
const followEvery = 10 * time.Second

// FollowMembers calls set with the client addresses of the cluster's
// voting members other than the one at self (reached on loopback
// instead), at once and then every followEvery, until ctx ends. A list
// that fails is tried again at the next tick (set keeps what it has).
func (c *Cluster) FollowMembers(ctx context.Context, self netip.Addr, set func(addrs []string)) {
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		if ms, err := c.memberList(ctx, clientv3.WithSerializable()); err == nil {
			set(clientAddrs(ms, self))
		} else if ctx.Err() == nil {
			c.log.Debug("cannot list the etcd members for the apiserver's balancer", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// clientAddrs lists the host:port of the client URLs of the voters of ms,
// except those on self.
func clientAddrs(ms []Member, self netip.Addr) []string {
	var out []string
	for _, m := range ms {
		if m.Learner {
			continue // a learner serves no client request
		}
		for _, raw := range m.ClientURLs {
			u, err := url.Parse(raw)
			if err != nil || u.Host == "" {
				continue
			}
			if ip, err := netip.ParseAddr(u.Hostname()); err == nil && ip == self {
				continue
			}
			out = append(out, net.JoinHostPort(u.Hostname(), u.Port()))
		}
	}
	return out
}
