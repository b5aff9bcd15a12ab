package apilb

import (
	"io"
	"slices"
	"sync"
	"time"
)

// downAfter is how many probes in a row a server may fail before it counts
// as down; one failed dial counts as down at once.
const downAfter = 2

// server is one server the balancer knows.
type server struct {
	addr    string // host:port
	healthy bool
	fails   int // failed probes in a row
	lastErr string
	conns   map[io.Closer]struct{} // connections carried to it now
}

// pool is the node's list of servers, their health and the connections
// carried to each. The balancer dials servers in pool.order; it sticks to
// the server it reached last while that one stays healthy, so a node's
// connections are not spread for no reason, or with prefer to the joined
// one whenever it is healthy.
type pool struct {
	mu      sync.Mutex
	joined  string // the server the node joined: always kept, as the last resort
	prefer  bool   // the joined server goes first whenever it is healthy
	servers []*server
	current string
	updated time.Time
}

func newPool(joined string, known []string) *pool {
	p := &pool{joined: joined}
	p.set(known)
	return p
}

// set replaces the servers learned from the cluster by addrs (sorted,
// without duplicates), keeping what is known of those that stay. The
// joined server stays in the list whatever addrs holds; an empty addrs
// (no apiserver has its endpoint published at this instant) changes
// nothing. It reports whether the list changed.
func (p *pool) set(addrs []string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(addrs) == 0 && len(p.servers) > 0 {
		return false
	}
	want := slices.Sorted(slices.Values(addrs))
	want = slices.Compact(want)
	if !slices.Contains(want, p.joined) {
		want = append(want, p.joined)
	}
	if slices.Equal(want, p.addrsLocked()) {
		return false
	}
	next := make([]*server, 0, len(want))
	for _, a := range want {
		s := p.findLocked(a)
		if s == nil {
			s = &server{addr: a, healthy: true, conns: map[io.Closer]struct{}{}}
		}
		next = append(next, s)
	}
	p.servers = next
	p.updated = time.Now()
	return true
}

func (p *pool) addrsLocked() []string {
	out := make([]string, len(p.servers))
	for i, s := range p.servers {
		out[i] = s.addr
	}
	return out
}

func (p *pool) findLocked(addr string) *server {
	for _, s := range p.servers {
		if s.addr == addr {
			return s
		}
	}
	return nil
}

// addrs lists every known server.
func (p *pool) addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrsLocked()
}

// order is the order to dial in: the current server (with prefer, the
// joined one while it is healthy) if it is healthy, the other healthy
// servers, then the unhealthy ones (a probe may lag behind a server that
// came back).
func (p *pool) order() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.current
	if j := p.findLocked(p.joined); p.prefer && j != nil && j.healthy {
		first = p.joined
	}
	var healthy, down []string
	for _, s := range p.servers {
		switch {
		case !s.healthy:
			down = append(down, s.addr)
		case s.addr == first:
			healthy = append([]string{s.addr}, healthy...)
		default:
			healthy = append(healthy, s.addr)
		}
	}
	return append(healthy, down...)
}

// dialed records a dial's outcome: a server that took a connection is the
// current one; one that refused is down at once. It reports whether the
// current server changed, and from which.
func (p *pool) dialed(addr string, err error) (changed bool, was string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.findLocked(addr)
	if s == nil {
		return false, ""
	}
	if err != nil {
		p.markLocked(s, false, err.Error(), downAfter)
		return false, ""
	}
	p.markLocked(s, true, "", 0)
	if p.current == addr {
		return false, ""
	}
	was, p.current = p.current, addr
	p.updated = time.Now()
	return true, was
}

// probed records a health probe's outcome. A server that turns down while
// another is healthy gives back the connections carried to it, for their
// clients to reconnect through the balancer to a healthy one; it reports
// whether the server's health changed.
func (p *pool) probed(addr string, err error) (changed bool, drop []io.Closer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.findLocked(addr)
	if s == nil {
		return false, nil
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	was := s.healthy
	p.markLocked(s, err == nil, msg, 1)
	if was && !s.healthy && p.anyHealthyLocked() {
		for c := range s.conns {
			drop = append(drop, c)
		}
	}
	return was != s.healthy, drop
}

// markLocked counts one outcome for s: failures weigh step, and s is down
// once they reach downAfter.
func (p *pool) markLocked(s *server, ok bool, msg string, step int) {
	if ok {
		if !s.healthy {
			p.updated = time.Now()
		}
		s.healthy, s.fails, s.lastErr = true, 0, ""
		return
	}
	s.fails += step
	s.lastErr = msg
	if s.fails >= downAfter && s.healthy {
		s.healthy = false
		p.updated = time.Now()
	}
}

func (p *pool) anyHealthyLocked() bool {
	return slices.ContainsFunc(p.servers, func(s *server) bool { return s.healthy })
}

// track counts c as carried to addr until the returned func is called.
func (p *pool) track(addr string, c io.Closer) (untrack func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.findLocked(addr)
	if s == nil { // dropped from the list while dialing: carry it untracked
		return func() {}
	}
	s.conns[c] = struct{}{}
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(s.conns, c)
	}
}

// state is what the pool knows, for the state file.
func (p *pool) state(listen string) State {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := State{Listen: listen, Current: p.current, Updated: p.updated.UTC()}
	for _, s := range p.servers {
		st.Servers = append(st.Servers, ServerState{
			Address: s.addr, Healthy: s.healthy, Joined: s.addr == p.joined, Connections: len(s.conns), LastError: s.lastErr,
		})
	}
	return st
}
