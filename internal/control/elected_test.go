package control

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeTerm counts its running terms across servers.
type fakeTerm struct {
	running *atomic.Int32
	most    *atomic.Int32
	terms   atomic.Int32 // started by this server
	started chan struct{}
}

func (*fakeTerm) Name() string { return "kube-scheduler" }

func (f *fakeTerm) Run(ctx context.Context) error {
	n := f.running.Add(1)
	for m := f.most.Load(); n > m; m = f.most.Load() {
		if f.most.CompareAndSwap(m, n) {
			break
		}
	}
	f.terms.Add(1)
	f.started <- struct{}{}
	<-ctx.Done()
	f.running.Add(-1)
	return nil
}

func (*fakeTerm) WaitReady(context.Context) error { return nil }

func fastTiming() timing {
	return timing{leaseDuration: 2 * time.Second, renewDeadline: time.Second, retryPeriod: 100 * time.Millisecond, termRetry: 100 * time.Millisecond}
}

// server is one server's Elected over a shared fake API, running.
type server struct {
	e      *Elected
	term   *fakeTerm
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, client *fake.Clientset, name string, running, most *atomic.Int32) *server {
	t.Helper()
	term := &fakeTerm{running: running, most: most, started: make(chan struct{}, 8)}
	e := &Elected{term: term, client: client, identity: name, log: slog.New(slog.DiscardHandler), timing: fastTiming()}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{e: e, term: term, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-s.done; err != nil {
			t.Errorf("Run of %s: %v", name, err)
		}
	})
	return s
}

// waitTerm returns the first of a and b (b may be nil) to start a term.
func waitTerm(t *testing.T, a, b *server) *server {
	t.Helper()
	var bStarted <-chan struct{}
	if b != nil {
		bStarted = b.term.started
	}
	select {
	case <-a.term.started:
		return a
	case <-bStarted:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no server started a term within 10 s")
		return nil
	}
}

// Of two servers one runs the term; the other is ready (another leads);
// when the leader stops, the other takes over at once (the lease was
// released), and the two never run at the same time.
func TestElectedOneAtATime(t *testing.T) {
	client := fake.NewClientset()
	var running, most atomic.Int32
	a := startServer(t, client, "a", &running, &most)
	b := startServer(t, client, "b", &running, &most)
	leader := waitTerm(t, a, b)
	other := b
	if leader == b {
		other = a
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := other.e.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady of the server that does not lead: %v", err)
	}
	start := time.Now()
	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Fatalf("Run after stop = %v", err)
	}
	leader.done <- nil // for the cleanup
	if s := waitTerm(t, other, nil); s != other {
		t.Fatal("the other server did not take over")
	}
	if took := time.Since(start); took > fastTiming().leaseDuration {
		t.Errorf("take-over took %s: the lease was not released but ran out", took)
	}
	if most.Load() != 1 {
		t.Errorf("%d terms ran at once, want 1", most.Load())
	}
}

// A leader that cannot renew its lease stops its term without ending, and
// leads again once it can.
func TestElectedLostLeaseStandsAgain(t *testing.T) {
	client := fake.NewClientset()
	var running, most atomic.Int32
	var failing atomic.Bool
	client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, errors.New("etcd is slow")
		}
		return false, nil, nil
	})
	a := startServer(t, client, "a", &running, &most)
	waitTerm(t, a, nil)
	failing.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if running.Load() != 0 {
		t.Fatal("the term still runs after the lease could not be renewed")
	}
	select {
	case err := <-a.done:
		t.Fatalf("Run ended on a lost lease: %v", err)
	default:
	}
	failing.Store(false)
	waitTerm(t, a, nil)
	if a.term.terms.Load() != 2 {
		t.Errorf("terms = %d, want 2: the first, and one after the lease came back", a.term.terms.Load())
	}
}
