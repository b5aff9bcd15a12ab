package carotate

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/secretsenc"
	"github.com/monokube/monokube/internal/testutil"
)

// server is one server's identity in a temporary data dir.
type server struct {
	cfg *config.Server
	l   datadir.Layout
	id  *identity.Identity
}

// newServer makes a server, taking the identity of from if given (as a
// joining server does).
func newServer(t *testing.T, from *server) *server {
	t.Helper()
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	if from != nil {
		b, err := from.id.Bundle()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(l); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testutil.ServerConfig(t, dir, nil)
	id, err := identity.Init(cfg, l, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &server{cfg: cfg, l: l, id: id}
}

// restart is a server's restart that its Sync asked for, with the
// servers that had reported the state's hash by then.
type restart struct {
	server   string
	reported []string
}

// syncing runs each server's Sync, and its certificate check when one
// is requested (the renewal component's part), until the test ends. A
// restart a Sync asks for is made as a server makes it: a new Sync that
// read the etcd CA file at its start. It returns the restarts so far.
func syncing(t *testing.T, client *fake.Clientset, servers map[string]*server) func() []restart {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	log := slog.New(slog.DiscardHandler)
	names := slices.Sorted(maps.Keys(servers))
	start := func(name string) *Sync {
		s := servers[name]
		return &Sync{Client: client, Layout: s.l, Node: name, Log: log, Checked: func() bool { return !s.id.RotatePending() },
			EtcdTrusted: caBundle(t, s.id.Creds.EtcdCA), Servers: func(context.Context) ([]string, error) { return names, nil }}
	}
	syncs := map[string]*Sync{}
	for _, name := range names {
		syncs[name] = start(name)
	}
	var mu sync.Mutex
	var restarts []restart
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for name, s := range servers {
				if s.id.RotatePending() {
					if _, err := s.id.Renew(s.cfg, time.Now(), log); err != nil {
						t.Errorf("server %s: renew: %v", name, err)
					}
				}
				if err := syncs[name].Once(ctx); errors.As(err, new(*lifecycle.RestartError)) {
					mu.Lock()
					restarts = append(restarts, restart{name, reportedState(ctx, client, s)})
					mu.Unlock()
					syncs[name] = start(name)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() []restart {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(restarts)
	}
}

// reportedState names the servers that report the published state's hash.
func reportedState(ctx context.Context, client *fake.Clientset, s *server) []string {
	keys, _ := encryptionKeys(s.l)
	st, _, _ := readState(ctx, client, keys)
	reports, _ := secretsenc.Reports(ctx, client, StatusName)
	var out []string
	for name, r := range reports {
		if r.Applied == st.hash {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// caBundle reads the certificate file of f.
func caBundle(t *testing.T, f pki.Files) []byte {
	t.Helper()
	data, err := os.ReadFile(f.Cert())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A rotation run from server a reaches server b: at each step b holds
// a's CA files byte for byte and has re-issued its leaves from the CA
// that signs, and both report the step's hash; a retirement a scheduled
// is published by a's Sync when its time comes and b takes it.
func TestRotationTwoServers(t *testing.T) {
	a := newServer(t, nil)
	b := newServer(t, a)
	client := testutil.WithVersions(fake.NewClientset())
	restarts := syncing(t, client, map[string]*server{"a": a, "b": b})
	servers := func(context.Context) ([]string, error) { return []string{"a", "b"}, nil }
	names := identity.RotatableCAs()
	oldServerCA := caBundle(t, a.id.Creds.ServerCA)

	steps := []struct {
		name   string
		change func(datadir.Layout) error
	}{
		{"trust", func(l datadir.Layout) error { return identity.StartCARotation(l, names, nil, time.Now()) }},
		{"switch", func(l datadir.Layout) error { return identity.SwitchCAs(l, names) }},
	}
	ctx := context.Background()
	for _, s := range steps {
		hash, err := Step(ctx, client, a.l, s.name, s.change)
		if err != nil {
			t.Fatalf("step %s: %v", s.name, err)
		}
		if err := Agree(ctx, client, servers, hash, s.name, 10*time.Second); err != nil {
			t.Fatalf("step %s: %v", s.name, err)
		}
		for name, srv := range map[string]*server{"a": a, "b": b} {
			files, err := identity.ReadCAFiles(srv.l)
			if err != nil || files.Hash() != hash {
				t.Fatalf("step %s: server %s holds CA files %s (%v), want the published %s", s.name, name, files.Hash(), err, hash)
			}
		}
	}
	if !bytes.Equal(caBundle(t, a.id.Creds.ServerCA), caBundle(t, b.id.Creds.ServerCA)) {
		t.Fatal("the servers hold different server CA files")
	}
	certs, err := pki.ParseBundle(caBundle(t, b.id.Creds.ServerCA))
	if err != nil || len(certs) != 2 || bytes.Equal(pki.CertPEM(certs[0]), oldServerCA) || !bytes.Equal(pki.CertPEM(certs[1]), oldServerCA) {
		t.Fatalf("server b's server CA after the switch: %d certificates, %v; want [new, old]", len(certs), err)
	}
	serving, err := pki.Load(b.id.Creds.APIServerServing)
	if err != nil {
		t.Fatal(err)
	}
	if err := serving.Cert.CheckSignatureFrom(certs[0]); err != nil {
		t.Errorf("server b's apiserver certificate after the switch: %v; want it from the new CA", err)
	}
	if err := Finish(ctx, client, a.l); err != nil {
		t.Fatal(err)
	}

	if err := identity.ScheduleRetire(a.l, names, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "server b to retire the old CAs", func() bool {
		certs, err := pki.ParseBundle(caBundle(t, b.id.Creds.ServerCA))
		return err == nil && len(certs) == 1 && !b.id.RotatePending()
	})
	if due, err := identity.RetireDue(a.l, time.Now()); err != nil || due != nil {
		t.Errorf("the schedule after the retirement: %v, %v; want it done with", due, err)
	}
	// The old etcd CA is trusted by each server's etcd until it restarts:
	// a first, then b once a has reported from its restart.
	waitFor(t, "both servers to restart", func() bool { return len(restarts()) == 2 })
	want := []restart{{"a", nil}, {"b", []string{"a"}}}
	if got := restarts(); !reflect.DeepEqual(got, want) {
		t.Errorf("restarts after retiring the etcd CA: %+v; want a first, b after a reported", got)
	}
	time.Sleep(100 * time.Millisecond) // several more rounds of Sync
	if got := restarts(); len(got) != 2 {
		t.Errorf("restarts after the servers restarted once each: %+v; want no more", got)
	}
}

// A state that a server cannot open (sealed with a key it lacks) or that
// does not match its hash is an error, and the server's files are left
// alone.
func TestSyncRefusesAStateItCannotTrust(t *testing.T) {
	a := newServer(t, nil)
	other := newServer(t, nil) // another cluster: another encryption key
	client := testutil.WithVersions(fake.NewClientset())
	if _, err := Step(context.Background(), client, other.l, "trust", func(l datadir.Layout) error {
		return identity.StartCARotation(l, []string{identity.CAServer}, nil, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	before := caBundle(t, a.id.Creds.ServerCA)
	s := &Sync{Client: client, Layout: a.l, Node: "a", Log: slog.New(slog.DiscardHandler), Checked: func() bool { return true }}
	if err := s.Once(context.Background()); err == nil {
		t.Error("a state sealed with another cluster's key was taken")
	}
	if !bytes.Equal(before, caBundle(t, a.id.Creds.ServerCA)) {
		t.Error("the server's CA changed")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A retirement waits out client-go's reload of CA files from the trust
// step of a CA of serving certificates, and its reload of client
// certificates from the switch of the client CA; nothing when no rotation
// is under way.
func TestWait(t *testing.T) {
	s := newServer(t, nil)
	all := identity.RotatableCAs()
	if got, err := Wait(s.l, all, time.Now()); err != nil || got != 0 {
		t.Errorf("no rotation: Wait = %s, %v; want 0", got, err)
	}
	if err := identity.StartCARotation(s.l, all, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got, err := Wait(s.l, all, now); err != nil || got > TrustSettle || got < TrustSettle-time.Minute {
		t.Errorf("just after the trust step: Wait = %s, %v; want about %s", got, err, TrustSettle)
	}
	if got, _ := Wait(s.l, all, now.Add(TrustSettle)); got > 0 {
		t.Errorf("once the settle has passed: Wait = %s, want none", got)
	}
	if err := identity.SwitchCAs(s.l, []string{identity.CAClient}); err != nil {
		t.Fatal(err)
	}
	client := []string{identity.CAClient}
	if got, err := Wait(s.l, client, time.Now()); err != nil || got > RetireSettle || got < RetireSettle-time.Minute {
		t.Errorf("just after the switch of the client CA: Wait = %s, %v; want about %s", got, err, RetireSettle)
	}
}

// Step leaves no copy of the CA keys behind, and removes one a command
// killed during a step left.
func TestStepLeavesNoCopy(t *testing.T) {
	s := newServer(t, nil)
	stale := filepath.Join(s.l.Server(), ".ca-rotation-killed")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	client := testutil.WithVersions(fake.NewClientset())
	if _, err := Step(context.Background(), client, s.l, "trust", func(l datadir.Layout) error {
		return identity.StartCARotation(l, []string{identity.CAClient}, nil, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.l.Server(), ".ca-rotation-*")); len(left) != 0 {
		t.Errorf("copies left after a step: %v", left)
	}
}
