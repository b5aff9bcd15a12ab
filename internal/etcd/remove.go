package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// ErrRemoved is why a member's etcd stopped when the cluster removed it:
// its data belongs to a cluster it is no longer part of.
var ErrRemoved = errors.New("this server's etcd member was removed from the cluster")

// Remove removes the member named name (or with that hex ID). It refuses
// when the voters left would not hold a quorum among those that answer,
// saying how many; a leader first hands its leadership to a healthy voter,
// so the cluster does not wait out an election.
func (c *Cluster) Remove(ctx context.Context, name string) (MemberStatus, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return MemberStatus{}, err
	}
	target, ok := find(st, name)
	if !ok {
		return MemberStatus{}, fmt.Errorf("no etcd member %s: `monokube etcd members` lists them", name)
	}
	if err := quorumAfter(st, target); err != nil {
		return target, err
	}
	if target.Leader {
		if err := c.moveLeader(ctx, st, target); err != nil {
			return target, err
		}
	}
	if err := c.memberRemove(ctx, target); err != nil {
		return target, err
	}
	c.log.Info("removed etcd member", "member", target.Name, "id", fmt.Sprintf("%x", target.ID))
	return target, nil
}

// removeBound is how long a removal may wait for etcd to count the
// cluster healthy (its members connected a while, as after a leader move).
const removeBound = 30 * time.Second

func (c *Cluster) memberRemove(ctx context.Context, target MemberStatus) error {
	deadline := time.Now().Add(removeBound)
	for {
		rctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := c.client.MemberRemove(rctx, target.ID)
		cancel()
		switch {
		case err == nil || errors.Is(err, rpctypes.ErrMemberNotFound):
			return nil // an earlier try whose answer was lost
		case (errors.Is(err, rpctypes.ErrUnhealthy) || unanswered(ctx, err)) && time.Now().Before(deadline):
			if err := sleep(ctx, c.poll); err != nil {
				return err
			}
		default:
			return fmt.Errorf("remove etcd member %s (%x): %w", target.Name, target.ID, err)
		}
	}
}

func find(st []MemberStatus, name string) (MemberStatus, bool) {
	for _, m := range st {
		if m.Name == name || fmt.Sprintf("%x", m.ID) == name {
			return m, true
		}
	}
	return MemberStatus{}, false
}

// quorumAfter refuses removing target when etcd could not commit the
// removal (the voters that answer now are no quorum) or the voters left
// would not hold a quorum of themselves among those that answer.
func quorumAfter(st []MemberStatus, target MemberStatus) error {
	voters, healthy, left, leftHealthy := 0, 0, 0, 0
	for _, m := range st {
		if m.Learner {
			continue
		}
		voters++
		if m.Healthy {
			healthy++
		}
		if m.ID != target.ID {
			left++
			if m.Healthy {
				leftHealthy++
			}
		}
	}
	switch {
	case healthy < voters/2+1:
		return fmt.Errorf("the cluster has lost its quorum (%d of %d voters answer): etcd can change nothing; bring the servers that are down back, or, if they are gone for good, recover a survivor with --cluster-reset", healthy, voters)
	case target.Learner:
		return nil // learners do not vote
	case left == 0:
		return fmt.Errorf("etcd member %s is the cluster's only voter: removing it would end the cluster", target.Name)
	case leftHealthy < left/2+1:
		return fmt.Errorf("removing etcd member %s leaves %d voters of which %d answer, fewer than the %d a quorum needs: bring the servers that are down back first",
			target.Name, left, leftHealthy, left/2+1)
	}
	return nil
}

// moveLeader hands the leadership of leader to another healthy voter. etcd
// takes the request only from the leader itself, so it goes to the
// leader's own client URLs.
func (c *Cluster) moveLeader(ctx context.Context, st []MemberStatus, leader MemberStatus) error {
	var to MemberStatus
	for _, m := range st {
		if m.ID != leader.ID && !m.Learner && m.Healthy {
			to = m
			break
		}
	}
	lc, err := clientv3.New(clientv3.Config{Endpoints: leader.ClientURLs, TLS: c.tls, DialTimeout: callTimeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("connect to the etcd leader %s: %w", leader.Name, err)
	}
	defer lc.Close()
	mctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := lc.MoveLeader(mctx, to.ID); err != nil {
		return fmt.Errorf("move etcd's leadership from %s to %s before removing it: %w", leader.Name, to.Name, err)
	}
	c.log.Info("moved etcd's leadership away from the member to remove", "from", leader.Name, "to", to.Name)
	return nil
}

// removed reports whether srv stopped because its member left the
// cluster: its own view of the cluster no longer holds it (it applied its
// removal), or the other members no longer list it (it was removed while
// their messages did not reach it, and it learned so from their refusals).
func removed(srv *embed.Etcd, c Config) bool {
	self := srv.Server.MemberID()
	if srv.Server.Cluster().Member(self) == nil {
		return true
	}
	var urls []string
	for _, m := range srv.Server.Cluster().Members() {
		if m.ID != self {
			urls = append(urls, m.ClientURLs...)
		}
	}
	if len(urls) == 0 {
		return false
	}
	// The peer certificate is a client certificate of the etcd CA too.
	tlsCfg, err := transport.TLSInfo{CertFile: c.PeerCert, KeyFile: c.PeerKey, TrustedCAFile: c.CAFile}.ClientConfig()
	if err != nil {
		return false
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: urls, TLS: tlsCfg, DialTimeout: statusTimeout, Logger: zap.NewNop()})
	if err != nil {
		return false
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*statusTimeout)
	defer cancel()
	resp, err := cl.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return false
	}
	for _, m := range resp.Members {
		if types.ID(m.ID) == self {
			return false
		}
	}
	return true
}
