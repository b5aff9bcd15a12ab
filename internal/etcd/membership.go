package etcd

import (
	"context"
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
	log    *slog.Logger
	// poll is how often AddLearner and Promote ask again.
	poll time.Duration
}

// ClientTLS names the files a client of the cluster presents and trusts.
type ClientTLS struct{ CAFile, CertFile, KeyFile string }

// Dial connects to the members at endpoints (client URLs).
func Dial(endpoints []string, tls ClientTLS, log *slog.Logger) (*Cluster, error) {
	tlsCfg, err := transport.TLSInfo{CertFile: tls.CertFile, KeyFile: tls.KeyFile, TrustedCAFile: tls.CAFile}.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ", "), err)
	}
	return &Cluster{client: c, log: log, poll: time.Second}, nil
}

// Close ends the connection.
func (c *Cluster) Close() error { return c.client.Close() }

// Members lists the cluster's members.
func (c *Cluster) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.client.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	return members(resp.Members), nil
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
// which are unreachable.
func (c *Cluster) Status(ctx context.Context) ([]MemberStatus, error) {
	ms, err := c.Members(ctx)
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
	var blocker uint64
	var blockedSince time.Time
	saidUnhealthy := false
	for {
		ms, err := c.Members(ctx)
		if err != nil {
			return Joining{}, err
		}
		if m, ok := memberAt(ms, peerURL); ok {
			if m.Name != "" || !m.Learner {
				return Joining{}, fmt.Errorf("etcd member %s (%x) already serves at %s: remove it from the cluster (kubectl delete node %s on a server) before this machine joins again", m.Name, m.ID, peerURL, m.Name)
			}
			c.log.Info("resuming an interrupted join: the learner at this peer URL never started", "member", fmt.Sprintf("%x", m.ID))
			return Joining{ID: m.ID, InitialCluster: initialCluster(ms, m.ID, name)}, nil
		}
		resp, err := c.client.MemberAddAsLearner(ctx, []string{peerURL})
		if err == nil {
			c.log.Info("added this server to etcd as a learner", "member", fmt.Sprintf("%x", resp.Member.ID), "peer", peerURL)
			return Joining{ID: resp.Member.ID, InitialCluster: initialCluster(members(resp.Members), resp.Member.ID, name)}, nil
		}
		switch {
		case errors.Is(err, rpctypes.ErrUnhealthy):
			// etcd adds a member only once the voters have been connected
			// a while (5 s): right after another join, or while one is down.
			if !saidUnhealthy {
				c.log.Info("waiting for the etcd cluster to be healthy before joining it", "err", err)
				saidUnhealthy = true
			}
		case errors.Is(err, rpctypes.ErrTooManyLearners):
			blocker, blockedSince, err = c.waitLearner(ctx, ms, blocker, blockedSince, stale)
			if err != nil {
				return Joining{}, err
			}
		default:
			return Joining{}, fmt.Errorf("add this server to etcd as a learner: %w", err)
		}
		if err := sleep(ctx, c.poll); err != nil {
			return Joining{}, err
		}
	}
}

// waitLearner is AddLearner's wait for another learner: it says so when
// the learner blocking it changes, and removes one that has blocked it for
// longer than stale. It returns the blocker and since when it blocks.
func (c *Cluster) waitLearner(ctx context.Context, ms []Member, blocker uint64, since time.Time, stale time.Duration) (uint64, time.Time, error) {
	learner := firstLearner(ms)
	if learner.ID != blocker {
		c.log.Info("another server is joining the cluster; waiting until it is a voter", "learner", learner.Name, "peer", strings.Join(learner.PeerURLs, ","))
		return learner.ID, time.Now(), nil
	}
	if blocker == 0 || time.Since(since) <= stale {
		return blocker, since, nil
	}
	c.log.Warn("removing a learner that has not finished its join", "learner", learner.Name, "peer", strings.Join(learner.PeerURLs, ","), "waited", stale)
	if _, err := c.client.MemberRemove(ctx, blocker); err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
		return 0, time.Time{}, fmt.Errorf("remove the stale learner %x: %w", blocker, err)
	}
	return 0, time.Time{}, nil
}

// Promote makes learner id a voter once it has caught up with the leader.
// If it has not within bound, Promote removes it and says so: a learner
// left behind would block every later join.
func (c *Cluster) Promote(ctx context.Context, id uint64, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		_, err := c.client.MemberPromote(ctx, id)
		switch {
		case err == nil:
			c.log.Info("this server's etcd member is a voter", "member", fmt.Sprintf("%x", id))
			return nil
		case errors.Is(err, rpctypes.ErrMemberNotLearner):
			return nil // promoted by an earlier try whose answer was lost
		case !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) && !errors.Is(err, rpctypes.ErrUnhealthy):
			return fmt.Errorf("promote etcd member %x: %w", id, err)
		case time.Now().After(deadline):
			return c.abandon(ctx, id, bound)
		}
		if err := sleep(ctx, c.poll); err != nil {
			return err
		}
	}
}

// abandon removes learner id that did not catch up within bound.
func (c *Cluster) abandon(ctx context.Context, id uint64, bound time.Duration) error {
	why := fmt.Errorf("this server's etcd member did not catch up with the leader within %s (a slow disk or network, or a large database): it was removed; check the peer network and join again", bound)
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
