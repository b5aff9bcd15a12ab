package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Member is one member of the cluster.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"` // empty until the member has started once
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"` // empty until the member has started once
	Learner    bool     `json:"learner"`
}

// Cluster is a client of a running etcd cluster's membership, as a server
// of it (the etcd client certificate).
type Cluster struct {
	client *clientv3.Client
	tls    *tls.Config // for a client of one member (the leader)
	log    *slog.Logger
	// poll is how often AddLearner and Promote ask again.
	poll time.Duration
}

// ClientTLS names the files a client of the cluster presents and trusts.
type ClientTLS struct{ CAFile, CertFile, KeyFile string }

// Config is the TLS config of a client with files.
func (files ClientTLS) Config() (*tls.Config, error) {
	tlsCfg, err := transport.TLSInfo{CertFile: files.CertFile, KeyFile: files.KeyFile, TrustedCAFile: files.CAFile}.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	return tlsCfg, nil
}

// Dial connects to the members at endpoints (client URLs).
func Dial(endpoints []string, files ClientTLS, log *slog.Logger) (*Cluster, error) {
	tlsCfg, err := files.Config()
	if err != nil {
		return nil, err
	}
	return DialTLS(endpoints, tlsCfg, log)
}

// DialTLS is Dial with a client TLS config made in memory (a joining
// server's, before it has written its certificates).
func DialTLS(endpoints []string, tlsCfg *tls.Config, log *slog.Logger) (*Cluster, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ", "), err)
	}
	return &Cluster{client: c, tls: tlsCfg, log: log, poll: time.Second}, nil
}

// Close ends the connection.
func (c *Cluster) Close() error { return c.client.Close() }

// callTimeout bounds each membership request: a member that does not
// answer (a proposal without quorum, a peer still connecting) is asked
// again rather than waited for without end.
const callTimeout = 10 * time.Second

// HasKey reports whether the cluster holds key (a count, no value read).
func (c *Cluster) HasKey(ctx context.Context, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := c.client.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("look up %s in etcd: %w", key, err)
	}
	return resp.Count > 0, nil
}

// Members lists the cluster's members, as the cluster agrees on them.
func (c *Cluster) Members(ctx context.Context) ([]Member, error) {
	return c.memberList(ctx)
}

// Names are the members' names, each as its server calls itself (a
// member that never started has none yet: its peer URLs stand in).
func (c *Cluster) Names(ctx context.Context) ([]string, error) {
	members, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(members))
	for _, m := range members {
		name := m.Name
		if name == "" {
			name = strings.Join(m.PeerURLs, ",")
		}
		out = append(out, name)
	}
	return out, nil
}

// memberList lists the members; with opts clientv3.WithSerializable(), as
// the member asked knows them, which works without a quorum too.
func (c *Cluster) memberList(ctx context.Context, opts ...clientv3.OpOption) ([]Member, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := c.client.MemberList(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	return members(resp.Members), nil
}

// unanswered reports whether err is a request of c that timed out while
// ctx, the caller's, still runs: worth asking again. Besides gRPC's own,
// that is etcd's errors of the Unavailable code, which its client hands
// back as rpctypes.EtcdError: "request timed out" (possibly due to
// connection lost, or to a leader failure), "no leader", "unhealthy
// cluster".
func unanswered(ctx context.Context, err error) bool {
	var etcdErr rpctypes.EtcdError
	return ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded ||
		status.Code(err) == codes.Unavailable || (errors.As(err, &etcdErr) && etcdErr.Code() == codes.Unavailable))
}

// MemberStatus is a member as `monokube etcd members` shows it: what the
// cluster lists, and what the member answers itself.
type MemberStatus struct {
	Member
	Leader  bool   `json:"leader"`
	Healthy bool   `json:"healthy"`         // it answered a status request
	Error   string `json:"error,omitempty"` // why not, if it did not
	DBSize  int64  `json:"dbSize"`          // bytes, as it reported
}

// statusTimeout bounds each member's status request: a member that is
// down must not hold the listing.
const statusTimeout = 3 * time.Second

// Status lists the members with each one's own answer: the leader, and
// which are unreachable. It lists them as the member asked knows them, so
// that a cluster that lost its quorum shows which members are down.
func (c *Cluster) Status(ctx context.Context) ([]MemberStatus, error) {
	ms, err := c.memberList(ctx, clientv3.WithSerializable()) // a cluster without quorum shows too
	if err != nil {
		return nil, err
	}
	out := make([]MemberStatus, 0, len(ms))
	for _, m := range ms {
		out = append(out, c.status(ctx, m))
	}
	return out, nil
}

func (c *Cluster) status(ctx context.Context, m Member) MemberStatus {
	st := MemberStatus{Member: m, Error: "never started"}
	for _, u := range m.ClientURLs {
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		resp, err := c.client.Status(sctx, u)
		cancel()
		if err != nil {
			st.Error = err.Error()
			continue
		}
		return MemberStatus{Member: m, Healthy: true, Leader: resp.Leader == m.ID, DBSize: resp.DbSize}
	}
	return st
}

// Joining is a member added but not yet started: its ID and the initial
// cluster its first start names (Config.InitialCluster).
type Joining struct {
	ID             uint64
	InitialCluster string
}

// AddLearner adds the member name at peerURL as a learner. etcd takes one
// learner at a time: while another is joining, AddLearner waits, saying
// so, and a learner that blocks it for longer than stale (its joiner gave
// up or died without removing it) is removed. A learner at peerURL that
// never started (an interrupted join of this machine) is taken as it is.
// A started member at peerURL is refused: that machine must be removed
// from the cluster before it joins again.
func (c *Cluster) AddLearner(ctx context.Context, name, peerURL string, stale time.Duration) (Joining, error) {
	w := &joinWait{stale: stale, said: map[string]bool{}}
	for {
		j, done, err := c.tryAdd(ctx, name, peerURL, w)
		if done || err != nil {
			return j, err
		}
		if err := sleep(ctx, c.poll); err != nil {
			return Joining{}, err
		}
	}
}

// joinWait is what AddLearner has seen and said while it waits.
type joinWait struct {
	stale   time.Duration
	blocker uint64    // the other learner it waits for
	since   time.Time // since when
	said    map[string]bool
}

// once logs msg the first time key comes up.
func (w *joinWait) once(log *slog.Logger, key, msg string, args ...any) {
	if !w.said[key] {
		log.Info(msg, args...)
		w.said[key] = true
	}
}

// tryAdd is one round of AddLearner: done when this server's learner is
// there, an error when it never will be, neither when it must wait.
func (c *Cluster) tryAdd(ctx context.Context, name, peerURL string, w *joinWait) (Joining, bool, error) {
	ms, err := c.Members(ctx)
	if unanswered(ctx, err) {
		w.once(c.log, "unanswered", "etcd does not answer yet; asking again", "err", err)
		return Joining{}, false, nil
	}
	if err != nil {
		return Joining{}, false, err
	}
	if err := CheckJoin(ms, name, peerURL); err != nil {
		return Joining{}, false, err
	}
	if m, ok := memberAt(ms, peerURL); ok {
		c.log.Info("resuming an interrupted join: the learner at this peer URL never started", "member", fmt.Sprintf("%x", m.ID))
		return Joining{ID: m.ID, InitialCluster: initialCluster(ms, m.ID, name)}, true, nil
	}
	if l := firstLearner(ms); l.ID != 0 { // asking etcd now would only be refused
		return Joining{}, false, c.waitLearner(ctx, l, w)
	}
	resp, err := c.addLearner(ctx, peerURL)
	switch {
	case err == nil:
		c.log.Info("added this server to etcd as a learner", "member", fmt.Sprintf("%x", resp.Member.ID), "peer", peerURL)
		return Joining{ID: resp.Member.ID, InitialCluster: initialCluster(members(resp.Members), resp.Member.ID, name)}, true, nil
	case errors.Is(err, rpctypes.ErrUnhealthy):
		// etcd adds a member only once the voters have been connected a
		// while (5 s): right after another join, or while one is down.
		w.once(c.log, "unhealthy", "waiting for the etcd cluster to be healthy before joining it", "err", err)
	case unanswered(ctx, err):
		// A timed-out add may have been applied: the next round finds the
		// learner at this peer URL and takes it.
		w.once(c.log, "unanswered", "etcd does not answer yet; asking again", "err", err)
	case errors.Is(err, rpctypes.ErrTooManyLearners): // one was added since the list
	default:
		return Joining{}, false, fmt.Errorf("add this server to etcd as a learner: %w", err)
	}
	return Joining{}, false, nil
}

func (c *Cluster) addLearner(ctx context.Context, peerURL string) (*clientv3.MemberAddResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.client.MemberAddAsLearner(ctx, []string{peerURL})
}

// waitLearner is AddLearner's wait for another learner: it says so when
// the learner it waits for changes, and removes one that has kept it
// waiting for longer than w.stale.
func (c *Cluster) waitLearner(ctx context.Context, learner Member, w *joinWait) error {
	if learner.ID != w.blocker {
		c.log.Info("another server is joining the cluster; waiting until it is a voter", "learner", learner.Name, "peer", strings.Join(learner.PeerURLs, ","))
		w.blocker, w.since = learner.ID, time.Now()
		return nil
	}
	if time.Since(w.since) <= w.stale {
		return nil
	}
	c.log.Warn("removing a learner that has not finished its join", "learner", learner.Name, "peer", strings.Join(learner.PeerURLs, ","), "waited", w.stale)
	rctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.client.MemberRemove(rctx, learner.ID); err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) && !unanswered(ctx, err) {
		return fmt.Errorf("remove the stale learner %x: %w", learner.ID, err)
	}
	w.blocker = 0
	return nil
}

// Promote makes learner id a voter once it has caught up with the leader.
// If it has not within bound, Promote removes it and says so: a learner
// left behind would block every later join.
func (c *Cluster) Promote(ctx context.Context, id uint64, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		pctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := c.client.MemberPromote(pctx, id)
		cancel()
		switch {
		case err == nil:
			c.log.Info("this server's etcd member is a voter", "member", fmt.Sprintf("%x", id))
			return nil
		case errors.Is(err, rpctypes.ErrMemberNotLearner):
			return nil // promoted by an earlier try whose answer was lost
		case !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) && !errors.Is(err, rpctypes.ErrUnhealthy) && !unanswered(ctx, err):
			return fmt.Errorf("promote etcd member %x: %w", id, err)
		case time.Now().After(deadline):
			return c.abandon(ctx, id, bound)
		}
		if err := sleep(ctx, c.poll); err != nil {
			return err
		}
	}
}

// RemoveLearner removes learner id, a join given up before its member
// started.
func (c *Cluster) RemoveLearner(ctx context.Context, id uint64) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.client.MemberRemove(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
		return fmt.Errorf("remove the learner %x this server added: %w", id, err)
	}
	return nil
}

// ErrNotCaughtUp is a joining member that Promote removed: it did not
// catch up with the leader in time.
var ErrNotCaughtUp = errors.New("this server's etcd member did not catch up with the leader")

// abandon removes learner id that did not catch up within bound.
func (c *Cluster) abandon(ctx context.Context, id uint64, bound time.Duration) error {
	why := fmt.Errorf("%w within %s (a slow disk or network, a large database, or the members cannot reach this server's peer port %d): it was removed; check the peer network and join again", ErrNotCaughtUp, bound, PeerPort)
	if _, err := c.client.MemberRemove(ctx, id); err != nil {
		return fmt.Errorf("%w (removing it failed too: %w)", why, err)
	}
	return why
}

func members(ms []*etcdserverpb.Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	return out
}

func memberAt(ms []Member, peerURL string) (Member, bool) {
	for _, m := range ms {
		if slices.Contains(m.PeerURLs, peerURL) {
			return m, true
		}
	}
	return Member{}, false
}

func firstLearner(ms []Member) Member {
	for _, m := range ms {
		if m.Learner {
			return m
		}
	}
	return Member{}
}

// initialCluster is etcd's --initial-cluster for the first start of member
// id, to be named name: every member by its name (none for one that never
// started), as etcdctl member add prints it; etcd checks that it lists
// every member.
func initialCluster(ms []Member, id uint64, name string) string {
	var parts []string
	for _, m := range ms {
		n := m.Name
		if m.ID == id {
			n = name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
