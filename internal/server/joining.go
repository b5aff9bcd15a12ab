package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/join"
	"github.com/monokube/monokube/internal/lifecycle"
)

// How long a joining server's etcd member may take: to be added while
// other servers join, and to catch up with the leader once started.
const (
	learnerStale   = 3 * time.Minute
	learnerCatchUp = 90 * time.Second // under the group's ready timeout
)

// joining reports whether this start joins another server's cluster: --server
// is given and the data dir holds no etcd data yet. Once etcd has data the
// server is a member and starts from its data dir alone.
func joining(cfg *config.Server, l datadir.Layout) bool {
	return cfg.Join.Server != "" && !l.HasEtcdData()
}

// takeIdentity is a joining server's identity phase before identity.Init:
// it finds the cluster with the server token, refuses to join one whose
// settings differ from this server's (naming each), adds this server's
// etcd member as a learner once the members have shown they reach it,
// and writes the cluster's identity into the data dir. Nothing is written
// before every check has passed.
func takeIdentity(ctx context.Context, cfg *config.Server, l datadir.Layout, log *slog.Logger) (*memberJoin, error) {
	tok, err := join.ParseToken(cfg.Join.Token)
	if err != nil {
		return nil, err
	}
	d, err := join.Discover(ctx, cfg.Join.Server, tok, join.DefaultPatience(), log)
	if err != nil {
		return nil, err
	}
	mine := identity.ClusterSettings{ClusterCIDR: cfg.ClusterCIDR, ServiceCIDR: cfg.ServiceCIDR, ClusterDNS: cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain,
		FlannelBackend: cfg.FlannelBackend, Disabled: identity.DisabledOf(cfg), EmbeddedRegistry: identity.EmbeddedRegistryOf(cfg)}
	if m := mine.Mismatches(d.Settings); len(m) > 0 {
		return nil, fmt.Errorf("this server's settings differ from the cluster's at %s (%s): give the cluster's values, or leave them out where the cluster has the defaults", cfg.Join.Server, strings.Join(m, "; "))
	}
	data, err := join.FetchIdentity(ctx, cfg.Join.Server, d.CA, tok)
	if err != nil {
		return nil, err
	}
	b, err := identity.DecodeBundle(data, l)
	if err != nil {
		return nil, err
	}
	mj, err := checkMembership(ctx, cfg, l, b, log)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(b.Write(l), fsutil.SaveState(mj.pending, pendingPromotion{Host: mj.host, MemberID: mj.ID})); err != nil {
		_ = mj.cluster.Close()
		return nil, err
	}
	log.Info("took the cluster's identity", "server", cfg.Join.Server)
	return mj, nil
}

// checkMembership asks the joined server's etcd, with a client
// certificate made in memory from the cluster's etcd CA, whether this
// server may join it: its name and peer URL clash with no member
// (etcd.CheckJoin), it reaches the members' peer ports (etcd.ReachPeers),
// no agent holds its node name and no apiserver its advertise address.
// Then it adds this server's member as a learner (addLearner). Nothing is
// written yet.
func checkMembership(ctx context.Context, cfg *config.Server, l datadir.Layout, b identity.Bundle, log *slog.Logger) (*memberJoin, error) {
	host, err := joinHost(cfg.Join.Server)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := b.EtcdClientTLS(l, time.Now())
	if err != nil {
		return nil, err
	}
	cluster, err := etcd.DialTLS([]string{etcd.ClientURLOn(host)}, tlsCfg, log.With("component", "etcd-join"))
	if err != nil {
		return nil, err
	}
	mj, err := checkAndAdd(ctx, cfg, cluster, host, log)
	if err != nil {
		_ = cluster.Close()
		return nil, err
	}
	mj.pending = pendingFile(l)
	return mj, nil
}

func checkAndAdd(ctx context.Context, cfg *config.Server, cluster *etcd.Cluster, host netip.Addr, log *slog.Logger) (*memberJoin, error) {
	ms, err := cluster.Members(ctx)
	if err != nil {
		return nil, fmt.Errorf("ask the etcd of %s about its members (its port %d must be reachable from here): %w", host, etcd.ClientPort, err)
	}
	self := etcd.PeerURL(cfg.NodeIP)
	warn, refuse := etcd.ReachPeers(ctx, ms, self)
	if err := errors.Join(etcd.CheckJoin(ms, cfg.NodeName, self), refuse); err != nil {
		return nil, fmt.Errorf("this server cannot join the cluster at %s: %w", cfg.Join.Server, err)
	}
	if warn != nil {
		log.Warn("joining while some etcd members are out of reach", "err", warn)
	}
	if err := errors.Join(checkAgentName(ctx, cluster, cfg.NodeName), checkAdvertised(ctx, cluster, cfg.AdvertiseAddress)); err != nil {
		return nil, err
	}
	return addLearner(ctx, cfg, cluster, host, log)
}

// checkAgentName refuses a server named as an agent of the cluster: its
// kubelet would take over that agent's Node. An agent holds its name by a
// claim (join.ClaimName, a Lease the CSR approver makes) until its node
// is deleted; servers' own nodes make none. The apiserver keeps it in
// etcd at /registry/leases/kube-system/<claim>.
func checkAgentName(ctx context.Context, cluster *etcd.Cluster, name string) error {
	claimed, err := cluster.HasKey(ctx, "/registry/leases/"+metav1.NamespaceSystem+"/"+join.ClaimName(name))
	if err != nil {
		return err
	}
	if claimed {
		return fmt.Errorf("node name %s is held by an agent of the cluster: give this server another --node-name, or remove that agent first (`monokube uninstall` on it, or `kubectl delete node %s`)", name, name)
	}
	return nil
}

// checkAdvertised refuses an advertise address that another server's
// apiserver publishes already: the default/kubernetes endpoints, and with
// them every agent's balancer, would take the two servers for one. Each
// apiserver keeps its address in etcd at /registry/masterleases/<ip>
// (upstream's lease endpoint reconciler), with a TTL of 15 s. An address
// of this machine's own is let through: its lease is this machine's
// earlier apiserver's (a removed server joining again), which expires.
func checkAdvertised(ctx context.Context, cluster *etcd.Cluster, addr netip.Addr) error {
	held, err := cluster.HasKey(ctx, "/registry/masterleases/"+addr.String())
	if err != nil {
		return err
	}
	if held && !ownAddress(addr) {
		return fmt.Errorf("address %s is advertised by a running apiserver of the cluster: give this server its own --advertise-address (by default its --node-ip); if that server stopped less than 15 s ago, start again in a moment", addr)
	}
	return nil
}

// ownAddress reports whether addr is an address of this machine: one it
// can listen on.
func ownAddress(addr netip.Addr) bool {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// pendingPromotion is the record of a learner this server added and has
// not seen promoted yet (<data-dir>/server/etcd-join.json): a start that
// finds it promotes the member first, so a join interrupted after etcd
// started never leaves a learner behind.
type pendingPromotion struct {
	Host     netip.Addr `json:"host"`     // the joined server, whose etcd promotes
	MemberID uint64     `json:"memberID"` // this server's learner
}

func pendingFile(l datadir.Layout) string { return filepath.Join(l.Server(), "etcd-join.json") }

// promotionPending reports whether this server's member was added as a
// learner and not yet seen promoted.
func promotionPending(l datadir.Layout) bool {
	_, err := os.Stat(pendingFile(l))
	return err == nil
}

// checkUnstartedJoin refuses a start without --server of a server whose
// join was interrupted after its learner was added but before its etcd
// member wrote any data: the data dir holds the cluster's identity and no
// etcd data, so starting alone would make a second cluster with the
// first's keys (k0s#5149).
func checkUnstartedJoin(cfg *config.Server, l datadir.Layout) error {
	if cfg.Join.Server != "" || l.HasEtcdData() || !promotionPending(l) {
		return nil
	}
	return errors.New("this server's join was interrupted before its etcd member started, and started alone it would be a cluster of its own: start it again with --server and --token (make a new server token with `monokube token create --role server` on a server of the cluster if that one expired)")
}

// undoJoin puts a join that failed once its learner had started (it did
// not catch up and was removed) back to before the member was added: the
// learner's etcd data goes aside (never deleted) and the join record with
// it, so that the next start with --server and --token joins afresh
// instead of starting a member the cluster no longer has.
func undoJoin(l datadir.Layout, cause error) error {
	aside := l.Etcd() + "-failed-join-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(l.Etcd(), aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w; its etcd data could not be moved aside (%w): move %s away before joining again", cause, err, l.Etcd())
	}
	if err := os.Remove(pendingFile(l)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w; drop the join record %s before joining again: %w", cause, pendingFile(l), err)
	}
	return fmt.Errorf("%w; the failed join is undone (its etcd data moved to %s): start again with --server and --token to join afresh", cause, aside)
}

// memberToJoin is the pre-run phase of a server whose join was
// interrupted once etcd had started: it finds the learner it added (in
// its join record). It returns nil when this server's member votes
// already.
func memberToJoin(l datadir.Layout, c control.Creds, log *slog.Logger) (*memberJoin, error) {
	var pending pendingPromotion
	fsutil.LoadState(pendingFile(l), &pending)
	if pending.MemberID == 0 {
		return nil, nil
	}
	log.Info("this server's etcd member was added but not yet seen promoted: promoting it first", "member", fmt.Sprintf("%x", pending.MemberID))
	cluster, err := dialJoined(pending.Host, c, log)
	if err != nil {
		return nil, err
	}
	return &memberJoin{cluster: cluster, Joining: etcd.Joining{ID: pending.MemberID}, host: pending.Host, pending: pendingFile(l)}, nil
}

// peersBound is how long a joiner waits for the members to connect to its
// peer port once its learner is added (they dial at once).
const peersBound = 15 * time.Second

// addLearner adds this server's member through the etcd of the server it
// joins, listening on its peer port meanwhile: once the member is added
// every other member connects there (etcd.PeerProbe). If none does, the
// learner is removed again and the join refused.
func addLearner(ctx context.Context, cfg *config.Server, cluster *etcd.Cluster, host netip.Addr, log *slog.Logger) (*memberJoin, error) {
	probe, err := etcd.ListenPeers(cfg.NodeIP, etcd.PeerPort)
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	self := etcd.PeerURL(cfg.NodeIP)
	j, err := cluster.AddLearner(ctx, cfg.NodeName, self, learnerStale)
	if err != nil {
		return nil, fmt.Errorf("join etcd through %s (its port %d must be reachable from here, and this machine's %d from there): %w",
			host, etcd.ClientPort, etcd.PeerPort, err)
	}
	ms, err := cluster.Members(ctx)
	if err != nil {
		return nil, errors.Join(err, cluster.RemoveLearner(ctx, j.ID))
	}
	warn, refuse := probe.Await(ctx, ms, self, peersBound)
	if refuse != nil {
		return nil, errors.Join(fmt.Errorf("this server cannot join the cluster at %s: %w", cfg.Join.Server, refuse), cluster.RemoveLearner(ctx, j.ID))
	}
	if warn != nil {
		log.Warn("joining while some etcd members have not reached this server", "err", warn)
	}
	return &memberJoin{cluster: cluster, Joining: j, host: host}, nil
}

// joinHost is the address of --server, where its etcd serves other servers.
func joinHost(server string) (netip.Addr, error) {
	u, err := url.Parse(server)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--server %q: %w", server, err)
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--server %q: give the server by its IP address to join it as a server (its etcd is reached there)", server)
	}
	return ip, nil
}

// dialJoined connects to the etcd of the server at host, the one this
// server joins, with this server's etcd client certificate.
func dialJoined(host netip.Addr, c control.Creds, log *slog.Logger) (*etcd.Cluster, error) {
	return etcd.Dial([]string{etcd.ClientURLOn(host)}, c.EtcdClientTLS(), log.With("component", "etcd-join"))
}

// memberJoin is a joining server's etcd member, added as a learner: the
// cluster it starts into, and the client that promotes it.
type memberJoin struct {
	etcd.Joining
	cluster *etcd.Cluster
	host    netip.Addr // the joined server
	pending string     // the pendingPromotion record, removed once promoted
}

// promotion is the task, between the local etcd and the apiserver, that
// makes a joining server's learner a voter once it has caught up: the
// apiserver serves only a member that votes.
type promotion struct{ *memberJoin }

var _ lifecycle.Task = promotion{}

// Name implements lifecycle.Task.
func (promotion) Name() string { return "etcd-promote" }

// Do implements lifecycle.Task.
func (p promotion) Do(ctx context.Context) error {
	defer p.cluster.Close()
	if err := p.cluster.Promote(ctx, p.ID, learnerCatchUp); err != nil {
		return err
	}
	if err := os.Remove(p.pending); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("this server's etcd member votes, but its join record stays: %w", err)
	}
	return nil
}
