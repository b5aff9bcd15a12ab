package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
)

// planReset is the pre-run of a start with --cluster-reset: the way back
// from a lost quorum. It reads the members from this server's stopped
// etcd data and refuses unless this server's member is a voter and no
// other member answers (etcd.PlanReset). A server that is the only member
// already has nothing to reset: nil, and the start goes on as any other.
func planReset(ctx context.Context, cfg *config.Server, l datadir.Layout, c control.Creds, log *slog.Logger) (*etcd.Reset, error) {
	if !l.HasEtcdData() {
		return nil, errors.New("--cluster-reset makes this server's etcd member the only one of its cluster, over its data, and this data dir holds no etcd data: " +
			"start without --cluster-reset (with --server and --token to join a cluster)")
	}
	ms, err := etcd.StoredMembers(l.Etcd())
	if err != nil {
		return nil, fmt.Errorf("--cluster-reset: %w", err)
	}
	r, err := etcd.PlanReset(ctx, ms, cfg.NodeName, etcd.ClientTLS{CAFile: c.EtcdCA.Cert(), CertFile: c.EtcdPeer.Cert(), KeyFile: c.EtcdPeer.Key()})
	if err != nil {
		return nil, fmt.Errorf("--cluster-reset refused, nothing changed: %w", err)
	}
	if len(r.Dropped) == 0 {
		log.Info("--cluster-reset: this server's etcd member is the only member already; nothing to reset")
		return nil, nil
	}
	if err := os.Remove(pendingFile(l)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--cluster-reset: drop the record of a promotion that is over: %w", err)
	}
	log.Warn("--cluster-reset: this server's etcd member becomes the only member of its cluster, over its data", "drops", droppedNames(r))
	return &r, nil
}

// announceReset tells the user, once the reset server serves, what
// happened and what to do with the dropped servers' machines.
func announceReset(cfg *config.Server, r *etcd.Reset, log *slog.Logger) func() {
	return func() {
		log.Warn("cluster reset done: this server is the only etcd member and serves the cluster's data. "+
			"The dropped servers refuse to start as they are (they learn they were removed, exit 78 and keep their etcd data aside). "+
			"To bring each back: run `monokube token create --role server` here, then start it with --server and --token-file; "+
			"a machine that is gone for good: `kubectl delete node NAME`. Later starts of this server need no --cluster-reset",
			"dropped", droppedNames(*r), "server", cfg.AdvertiseAddress.String())
	}
}

func droppedNames(r etcd.Reset) string {
	out := make([]string, 0, len(r.Dropped))
	for _, m := range r.Dropped {
		out = append(out, m.Name)
	}
	return strings.Join(out, ",")
}
