package server

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"

	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
)

// etcdBalancer is how the apiserver reaches etcd (etcd.BalancedURL): this
// server's member first, another voter while it does not answer its
// /livez (mutual TLS with the server's etcd client certificate). It
// learns the voters from the local member's list and keeps what it knows
// in EtcdBalancerFile, for `monokube etcd members` and the tests.
func etcdBalancer(cfg *config.Server, l datadir.Layout, c control.Creds, log *slog.Logger) (*apilb.LB, error) {
	tlsCfg, err := c.EtcdClientTLS().Config()
	if err != nil {
		return nil, err
	}
	learn := func(ctx context.Context, set func([]string)) {
		members, err := c.LocalEtcd(log)
		if err != nil {
			log.Warn("cannot follow the etcd members: the apiserver uses this server's member only", "err", err)
			return
		}
		defer members.Close()
		members.FollowMembers(ctx, cfg.NodeIP, set)
	}
	return apilb.New(apilb.Config{
		What:      "etcd member",
		Listen:    net.JoinHostPort("127.0.0.1", strconv.Itoa(etcd.BalancerPort)),
		Joined:    etcd.LocalAddr(),
		Prefer:    true,
		StateFile: EtcdBalancerFile(l),
		Probe:     apilb.HTTPSProbe(tlsCfg, "/livez"), // a local read: an election moves no connection
		Learn:     learn,
	}, log), nil
}

// EtcdBalancerFile is where the apiserver's etcd balancer keeps the
// members it knows (apilb.State).
func EtcdBalancerFile(l datadir.Layout) string {
	return filepath.Join(l.Server(), "etcd-balancer.json")
}
