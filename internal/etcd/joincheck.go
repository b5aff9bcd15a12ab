package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
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

// PeerProbe checks, while a joining server's learner is being added, that
// the members reach this machine's peer port: it listens there before the
// member is added and records who connects, since every member dials a
// member it has just been told of (etcd's peer streams, retried every
// 100 ms). The connections are closed at once; the member itself starts
// once Await has returned and the listener is closed.
type PeerProbe struct {
	ln   net.Listener
	mu   sync.Mutex
	from map[netip.Addr]bool
	done chan struct{}
}

// ListenPeers starts a PeerProbe on the peer port at ip.
func ListenPeers(ip netip.Addr, port int) (*PeerProbe, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("listen on this server's etcd peer port to check the members reach it: %w", err)
	}
	p := &PeerProbe{ln: ln, from: map[netip.Addr]bool{}, done: make(chan struct{})}
	go p.accept()
	return p, nil
}

func (p *PeerProbe) accept() {
	defer close(p.done)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			p.mu.Lock()
			p.from[ap.Addr().Unmap()] = true
			p.mu.Unlock()
		}
		_ = c.Close()
	}
}

// Close stops listening; it may be called more than once.
func (p *PeerProbe) Close() error {
	err := p.ln.Close()
	<-p.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// probePoll is how often Await looks at who has connected.
const probePoll = 50 * time.Millisecond

// Await waits up to bound for every started member of ms but the one at
// self to connect from the host of its peer URL, then stops listening. It
// refuses (refuse) when no member connected at all: the other servers
// cannot reach this machine's peer port, and the learner could never
// catch up; when some connected but not all (one may be down, or dial
// from another address), warn names the others.
func (p *PeerProbe) Await(ctx context.Context, ms []Member, self string, bound time.Duration) (warn, refuse error) {
	defer p.Close()
	deadline := time.Now().Add(bound)
	var missing []Member
	for {
		missing = p.missing(ms, self)
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, probePoll); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	someone := len(p.from) > 0
	p.mu.Unlock()
	switch {
	case len(missing) == 0:
		return nil, nil
	case !someone:
		return nil, fmt.Errorf("no etcd member connected to this server's peer port %s within %s: the other servers cannot reach TCP %d on this machine (a firewall, or the wrong --node-ip?); open it and start again",
			p.ln.Addr(), bound, PeerPort)
	}
	return fmt.Errorf("etcd member(s) %s did not connect to this server's peer port %s within %s: if the join does not complete, check that they reach TCP %d here",
		names(missing), p.ln.Addr(), bound, PeerPort), nil
}

// missing lists the started members of ms but self that have not
// connected from the host of a peer URL of theirs.
func (p *PeerProbe) missing(ms []Member, self string) []Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Member
	for _, m := range ms {
		if slices.Contains(m.PeerURLs, self) || m.Name == "" {
			continue
		}
		if !slices.ContainsFunc(m.PeerURLs, func(raw string) bool { return p.from[peerHost(raw)] }) {
			out = append(out, m)
		}
	}
	return out
}

// peerHost is the IP of a peer URL (the zero Addr for a name).
func peerHost(raw string) netip.Addr {
	u, err := url.Parse(raw)
	if err != nil {
		return netip.Addr{}
	}
	ip, _ := netip.ParseAddr(u.Hostname())
	return ip.Unmap()
}
