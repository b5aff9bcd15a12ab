package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"
)

// CheckJoin refuses, before a server joins, what would clash with a
// member of ms: another member already named name (two servers of one
// name would take each other's node and leases), or a member that has
// started at peerURL (that machine's old member: it must be removed
// first). A learner at peerURL that never started is this machine's own
// interrupted join, which AddLearner resumes.
func CheckJoin(ms []Member, name, peerURL string) error {
	var errs []error
	for _, m := range ms {
		mine := slices.Contains(m.PeerURLs, peerURL)
		switch {
		case mine && (m.Name != "" || !m.Learner):
			errs = append(errs, fmt.Errorf("etcd member %s (%x) already serves at %s, this server's peer URL: remove that member from the cluster before this machine joins again", m.Name, m.ID, peerURL))
		case !mine && m.Name == name:
			errs = append(errs, fmt.Errorf("etcd member %s (%x, at %v) already has this server's name: give this server another --node-name", m.Name, m.ID, m.PeerURLs))
		}
	}
	return errors.Join(errs...)
}

// peerDialTimeout bounds each reachability check of a member's peer port.
const peerDialTimeout = 3 * time.Second

// ReachPeers checks that this machine reaches the peer port of the
// started members of ms but the one at self (a TCP connection: etcd's TLS
// is checked when the member starts); k3s and kubeadm users see a bare
// timeout much later instead. It refuses (refuse) when this machine
// reaches fewer voters than a quorum of them, naming each member it cannot
// reach; when it reaches a quorum but not every member (one may be down),
// warn names those.
func ReachPeers(ctx context.Context, ms []Member, self string) (warn, refuse error) {
	var (
		mu      sync.Mutex
		errs    []error
		reached int
		wg      sync.WaitGroup
	)
	d := net.Dialer{Timeout: peerDialTimeout}
	voters := 0
	for _, m := range ms {
		if !m.Learner {
			voters++
		}
		if slices.Contains(m.PeerURLs, self) || (m.Learner && m.Name == "") { // this one, or one that never started
			continue
		}
		wg.Go(func() {
			err := dialAny(ctx, &d, m.PeerURLs)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("etcd member %s at %v: %w", m.Name, m.PeerURLs, err))
			} else if !m.Learner {
				reached++
			}
		})
	}
	wg.Wait()
	if len(errs) == 0 {
		return nil, nil
	}
	err := fmt.Errorf("this machine cannot reach the etcd peer port of %d member(s) (TCP %d must be open between the servers, both ways): %w", len(errs), PeerPort, errors.Join(errs...))
	if reached < voters/2+1 {
		return nil, fmt.Errorf("%w; it reaches %d of %d voters, fewer than etcd's quorum of %d", err, reached, voters, voters/2+1)
	}
	return err, nil
}

// dialAny connects to the first of urls that answers.
func dialAny(ctx context.Context, d *net.Dialer, urls []string) error {
	var errs []error
	for _, u := range urls {
		err := dialURL(ctx, d, u)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func dialURL(ctx context.Context, d *net.Dialer, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	return c.Close()
}
