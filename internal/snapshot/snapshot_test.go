package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// freePort is a loopback port free now (testutil's would import config,
// which imports this package).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// etcdDB runs a real etcd (loopback, no TLS: the file format is what is
// under test), writes n keys and returns a Source of its live snapshot
// and the path of its backend, to read once stop has stopped it.
func etcdDB(t *testing.T, n int) (live Source, backend string, stop func()) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "error"
	client := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready in 30 s")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := c.Put(t.Context(), "/k/"+strconv.Itoa(i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	live = func(w io.Writer) error {
		rc, err := c.Snapshot(context.Background())
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(w, rc)
		return err
	}
	var once bool
	stop = func() {
		if !once {
			once = true
			c.Close()
			e.Close()
		}
	}
	t.Cleanup(stop)
	return live, filepath.Join(cfg.Dir, "member", "snap", "db"), stop
}

func taken(t *testing.T, name string, kind Kind) Taken {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return Taken{
		Manifest: Manifest{Name: name, Kind: kind, Cluster: "c1", Node: "n1", Created: time.Now().UTC()},
		Identity: []byte(`{"version":1}`), Key: k,
	}
}

// TestSaveOpen: a snapshot of a live etcd and one of a stopped member's
// backend both save, list as good with etcd's revision and key count,
// and open with their key into the identity and a db etcd can restore.
func TestSaveOpen(t *testing.T) {
	live, backend, stop := etcdDB(t, 50)
	d := Dir{Path: filepath.Join(t.TempDir(), "snaps")}
	a := taken(t, "a", OnDemand)
	e, err := d.Save(live, a)
	if err != nil {
		t.Fatal(err)
	}
	if !e.OK() || e.Revision < 51 || e.Kind != OnDemand || e.Node != "n1" {
		t.Fatalf("entry %+v, want ok, revision ≥ 51, on-demand, node n1", e)
	}
	stop()
	b := taken(t, "b", PreUpgrade)
	if _, err := d.Save(FromBackend(backend), b); err != nil {
		t.Fatal(err)
	}
	list, err := d.List()
	if err != nil || len(list) != 2 || !list[0].OK() || !list[1].OK() {
		t.Fatalf("List = %+v, %v; want two good entries", list, err)
	}
	o, err := Open(list[1].Path, t.TempDir(), "c1", b.Key)
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Identity) != `{"version":1}` || o.Manifest.Keys != 50 || o.Manifest.RecoveryKeyID != b.Key.ID() {
		t.Fatalf("opened %+v, identity %q", o.Manifest, o.Identity)
	}
	if err := checkTrailer(o.DB); err != nil {
		t.Fatalf("extracted db: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(d.Path, ".*")); len(left) != 0 {
		t.Fatalf("partial files left: %v", left)
	}
}

// TestRefusals: each way a file can be wrong has its own error, and
// Inspect (what ls shows) finds a truncated file without hashing it.
func TestRefusals(t *testing.T) {
	live, _, _ := etcdDB(t, 20)
	d := Dir{Path: t.TempDir()}
	tk := taken(t, "s", Scheduled)
	e, err := d.Save(live, tk)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.Path)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name+Ext)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x40
	other, _ := NewKey()
	for _, tc := range []struct {
		name, path, cluster string
		key                 Key
		want                string
	}{
		{"truncated", variant("t", data[:len(data)/2]), "", tk.Key, "is truncated"},
		{"flipped byte", variant("f", flipped), "", tk.Key, "is damaged"},
		{"another cluster", e.Path, "c2", tk.Key, "snapshot of another cluster"},
		{"wrong key", e.Path, "c1", other, "recovery key does not open"},
		{"not a snapshot", variant("n", []byte("hello")), "", tk.Key, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path, t.TempDir(), tc.cluster, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := Inspect(variant("t2", data[:len(data)-2000])); !isTruncated(err) {
		t.Fatalf("Inspect of a truncated file: %v, want truncated", err)
	}
}

func isTruncated(err error) bool {
	var d *Damaged
	return errors.As(err, &d) && d.Truncated
}

// TestPrune: retention counts each kind on its own and only good files:
// a damaged newer file neither counts nor goes.
func TestPrune(t *testing.T) {
	live, _, _ := etcdDB(t, 1)
	d := Dir{Path: t.TempDir()}
	for i := range 4 {
		tk := taken(t, "sched-"+strconv.Itoa(i), Scheduled)
		tk.Manifest.Created = time.Date(2026, 1, 1, i, 0, 0, 0, time.UTC)
		if _, err := d.Save(live, tk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Save(live, taken(t, "mine", OnDemand)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Path, "sched-9"+Ext), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	gone, err := d.Prune(Scheduled, "n1", 2)
	if err != nil || strings.Join(gone, ",") != "sched-0,sched-1" {
		t.Fatalf("Prune = %v, %v; want sched-0,sched-1", gone, err)
	}
	list, _ := d.List()
	var names []string
	for _, e := range list {
		names = append(names, e.Name+"="+strings.Split(e.Status, ":")[0])
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "sched-2=ok") || !strings.Contains(got, "sched-3=ok") ||
		!strings.Contains(got, "mine=ok") || !strings.Contains(got, "sched-9=damaged") || len(list) != 4 {
		t.Fatalf("after prune: %s", got)
	}
}

func TestKeyText(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKey(" " + strings.ToUpper(k.String()) + "\n")
	if err != nil || back != k {
		t.Fatalf("ParseKey(String) = %v, %v", back, err)
	}
	for _, bad := range []string{"K10abc::server:xyz", k.String()[:20]} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestScheduleJitter(t *testing.T) {
	s, err := ParseSchedule("*/10 * * * * *")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	a, b := s.NextFor("server-1", now), s.NextFor("server-2", now)
	for _, at := range []time.Time{a, b} {
		if at.Before(now.Add(9*time.Second)) || !at.Before(now.Add(9*time.Second+2500*time.Millisecond)) {
			t.Errorf("next %v: want within a quarter of 10 s after 00:00:10", at)
		}
	}
	if a.Equal(b) {
		t.Errorf("two servers start their snapshots at the same time %v", a)
	}
	if _, err := ParseSchedule("every day"); err == nil || !strings.Contains(err.Error(), "0 */12 * * *") {
		t.Errorf("a bad spec: %v", err)
	}
}

// TestSaveFailsWhole: a source that fails half way (a full disk) makes
// Save fail with the cause and leaves nothing behind, neither a file
// that List shows nor a hidden partial one.
func TestSaveFailsWhole(t *testing.T) {
	live, _, _ := etcdDB(t, 10)
	d := Dir{Path: t.TempDir()}
	half := func(w io.Writer) error { return live(&limited{w: w, left: 4096}) }
	_, err := d.Save(half, taken(t, "full", Scheduled))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Save onto a full disk: %v, want ENOSPC", err)
	}
	if left, _ := os.ReadDir(d.Path); len(left) != 0 {
		t.Fatalf("a failed Save left %v", left)
	}
}

// limited fails with ENOSPC once left bytes are written.
type limited struct {
	w    io.Writer
	left int
}

func (l *limited) Write(p []byte) (int, error) {
	if len(p) > l.left {
		n, _ := l.w.Write(p[:l.left])
		l.left = 0
		return n, syscall.ENOSPC
	}
	l.left -= len(p)
	return l.w.Write(p)
}

// TestSwappedDB: a file whose etcd.db was replaced with another (and its
// SHA256SUMS rewritten to match) passes the sums but does not open: the
// sealed manifest names the original's hash.
func TestSwappedDB(t *testing.T) {
	live, _, _ := etcdDB(t, 5)
	d := Dir{Path: t.TempDir()}
	a, b := taken(t, "a", OnDemand), taken(t, "b", OnDemand)
	ea, err := d.Save(live, a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := d.Save(live, b)
	if err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(t.TempDir(), "forged"+Ext)
	entries := tarEntries(t, ea.Path)
	entries[entryEtcd] = tarEntries(t, eb.Path)[entryEtcd]
	writeTar(t, forged, entries)
	if _, err := Verify(forged, t.TempDir(), nil); err != nil {
		t.Fatalf("the forged file's sums should check without the key: %v", err)
	}
	_, err = Open(forged, t.TempDir(), "", a.Key)
	if err == nil || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("Open of a file with a swapped etcd.db: %v", err)
	}
	if _, err := d.Save(live, a); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("a second snapshot of the same name: %v", err)
	}
	bad := taken(t, "../x", OnDemand)
	if _, err := d.Save(live, bad); err == nil || !strings.Contains(err.Error(), "snapshot name") {
		t.Fatalf("a name with a slash: %v", err)
	}
}

func tarEntries(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if out[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}

// writeTar writes entries in the file's order with SHA256SUMS made anew.
func writeTar(t *testing.T, path string, entries map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var sums strings.Builder
	for _, name := range entryOrder() {
		data := entries[name]
		if name == entrySums {
			data = []byte(sums.String())
		} else {
			sum := sha256.Sum256(data)
			fmt.Fprintf(&sums, "%x  %s\n", sum, name)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}
