package etcd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/storage/schema"
)

// A cluster reset (`monokube server --cluster-reset`) is the way back from
// a lost quorum: the member on this machine starts as the only member of
// its cluster, over its own data (etcd's --force-new-cluster). The other
// members are dropped; when one of them starts again, the reset member
// tells it it was removed. Resetting while another member still runs
// would split the cluster in two, so PlanReset refuses that.

// Reset is what a cluster reset will do: keep Self, drop Dropped.
type Reset struct {
	Self    Member
	Dropped []Member
}

// StoredMembers reads the members the data dir of a stopped member last
// recorded (its backend's members bucket). The backend trails the log by
// at most a commit interval (100 ms), so a member added or removed just
// before the stop may be missing.
func StoredMembers(dataDir string) ([]Member, error) {
	return BackendMembers(filepath.Join(dataDir, "member", "snap", "db"))
}

// BackendMembers reads the members bucket of the etcd backend at path: a
// stopped member's member/snap/db, or an etcd snapshot.
func BackendMembers(path string) ([]Member, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no etcd data to read the members from: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open etcd data %s (is etcd of this server still running?): %w", path, err)
	}
	defer db.Close()
	var out []Member
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(schema.Members.Name())
		if b == nil {
			return fmt.Errorf("etcd data %s holds no members", path)
		}
		return b.ForEach(func(_, v []byte) error {
			var m membership.Member
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decode a member: %w", err)
			}
			out = append(out, Member{ID: uint64(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read the members from %s: %w", path, err)
	}
	return out, nil
}

// PlanReset decides whether the member named name, of the stopped members
// ms, may become the only member: it must be a voter (a learner may lack
// data), and no other member may answer on its peer port (peer is this
// member's peer certificate: a live member of the cluster accepts it).
func PlanReset(ctx context.Context, ms []Member, name string, peer ClientTLS) (Reset, error) {
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == name })
	if i < 0 {
		return Reset{}, fmt.Errorf("this server's etcd data has no member named %s; the members are %s: start with the --node-name the server had", name, names(ms))
	}
	r := Reset{Self: ms[i], Dropped: slices.Delete(slices.Clone(ms), i, i+1)}
	if r.Self.Learner {
		return Reset{}, fmt.Errorf("this server's etcd member %s is a learner that never caught up: its data may be behind; reset the cluster on one of the voters %s instead", name, names(r.Dropped))
	}
	tlsCfg, err := peer.Config()
	if err != nil {
		return Reset{}, err
	}
	if err := NoneAnswer(ctx, r.Dropped, tlsCfg); err != nil {
		return Reset{}, err
	}
	return r, nil
}

// NoneAnswer refuses a reset or a restore while any of the members ms
// answers on its peer port to a client with peer, a certificate of the
// etcd CA.
func NoneAnswer(ctx context.Context, ms []Member, peer *tls.Config) error {
	alive := answering(ctx, ms, peer)
	if len(alive) > 0 {
		return fmt.Errorf("etcd member(s) %s still answer on their peer port: a cluster reset while another member runs splits the cluster in two. "+
			"If those servers have quorum, start this one without --cluster-reset; if they are to go, stop monokube on them first, then reset here", names(alive))
	}
	return nil
}

// RemovedBy asks the other members of ms, over their peer port, for their
// member lists before the member named self starts: a member whose list
// lacks self's ID, and whose cluster confirms that list in a
// linearizable read (so a member that has a leader: not a stale one that
// was down while self joined), belongs to a cluster that dropped this
// member (a cluster reset or a restore from a snapshot elsewhere). It
// returns that member; ok is false when every member that answered still
// lists self, none answered, or none could confirm (the start goes on as
// ever).
func RemovedBy(ctx context.Context, ms []Member, self string, peer ClientTLS) (by Member, ok bool, err error) {
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == self })
	if i < 0 || len(ms) == 1 {
		return Member{}, false, nil
	}
	tlsCfg, err := peer.Config()
	if err != nil {
		return Member{}, false, err
	}
	client := peerClient(tlsCfg)
	defer client.CloseIdleConnections()
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		others []Member
	)
	for _, m := range slices.Delete(slices.Clone(ms), i, i+1) {
		wg.Go(func() {
			if lacksSelf(ctx, client, m, ms[i].ID) && confirmsRemoval(ctx, m, ms[i].ID, peer) {
				mu.Lock()
				others = append(others, m)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(others) == 0 {
		return Member{}, false, nil
	}
	return others[0], true, nil
}

// lacksSelf is whether m answers on a peer URL with a member list without
// self.
func lacksSelf(ctx context.Context, client *http.Client, m Member, self uint64) bool {
	for _, u := range m.PeerURLs {
		if ids, answered := peerMembers(ctx, client, u); answered {
			return !slices.Contains(ids, self)
		}
	}
	return false
}

// confirmsRemoval asks m's cluster, through m's client URLs, for its
// members in a linearizable read: only a cluster with a leader answers,
// and its answer is the committed membership.
func confirmsRemoval(ctx context.Context, m Member, self uint64, peer ClientTLS) bool {
	if len(m.ClientURLs) == 0 {
		return false
	}
	tlsCfg, err := peer.Config()
	if err != nil {
		return false
	}
	c, err := DialTLS(m.ClientURLs, tlsCfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*peerDialTimeout)
	defer cancel()
	list, err := c.Members(ctx)
	if err != nil {
		return false
	}
	return !slices.ContainsFunc(list, func(x Member) bool { return x.ID == self })
}

// peerMembers is the member IDs the member at peerURL lists (etcd's peer
// /members), and whether it answered.
func peerMembers(ctx context.Context, client *http.Client, peerURL string) ([]uint64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(peerURL, "/")+"/members", nil)
	if err != nil {
		return nil, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var ms []membership.Member
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ms) != nil {
		return nil, false
	}
	ids := make([]uint64, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, uint64(m.ID))
	}
	return ids, true
}

// peerClient is an HTTPS client of etcd's peer port with tlsCfg.
func peerClient(tlsCfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: peerDialTimeout}
}

// answering returns the members of ms that answer etcd's peer /version
// with the peer certificate.
func answering(ctx context.Context, ms []Member, peer *tls.Config) []Member {
	client := peerClient(peer)
	defer client.CloseIdleConnections()
	var (
		mu    sync.Mutex
		alive []Member
		wg    sync.WaitGroup
	)
	for _, m := range ms {
		wg.Go(func() {
			if slices.ContainsFunc(m.PeerURLs, func(u string) bool { return answers(ctx, client, u) }) {
				mu.Lock()
				alive = append(alive, m)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return alive
}

func answers(ctx context.Context, client *http.Client, peerURL string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(peerURL, "/")+"/version", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// names lists members for a message: "a (https://…), b (…)".
func names(ms []Member) string {
	if len(ms) == 0 {
		return "none"
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		n := m.Name
		if n == "" {
			n = fmt.Sprintf("%x (never started)", m.ID)
		}
		out = append(out, fmt.Sprintf("%s %v", n, m.PeerURLs))
	}
	return strings.Join(out, ", ")
}
