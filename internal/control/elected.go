package control

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/monokube/monokube/internal/lifecycle"
)

// Term is an upstream controller that runs for one leadership term: Run
// until ctx ends, then stop everything it started; WaitReady until it
// serves. The controller-manager and the scheduler are Terms, each run with
// upstream's own leader election off.
type Term interface {
	lifecycle.Readier
	Name() string
	Run(ctx context.Context) error
}

// timing is the lease's timing. Another server takes over leaseDuration
// after this one last renewed, and this one stops its term once it has
// failed to renew for renewDeadline: the difference (15 s) is longer than
// the controller-manager's shutdown timeout (10 s), so two terms do not
// overlap.
type timing struct {
	leaseDuration, renewDeadline, retryPeriod time.Duration
	// termRetry is the pause before standing again after a term that
	// failed, or after the lease was lost.
	termRetry time.Duration
}

func defaultTiming() timing {
	return timing{leaseDuration: 30 * time.Second, renewDeadline: 15 * time.Second, retryPeriod: 2 * time.Second, termRetry: 5 * time.Second}
}

// Elected runs a Term only while this server holds its lease
// (kube-system/<term's name>, the lease upstream's own election uses), so
// that of several servers one runs it at a time. Unlike upstream's, a
// lost lease never ends the process: the term stops, and this server
// stands again. On stop the term ends first and the lease is released
// after, so the next server starts at once and never beside it.
type Elected struct {
	term     Term
	client   kubernetes.Interface
	identity string
	log      *slog.Logger
	timing   timing

	mu      sync.Mutex
	elector *leaderelection.LeaderElector // the current one
	leading bool
}

// NewElected runs term under a lease taken with the credentials of
// kubeconfig (the component's own: upstream's RBAC lets each take its own
// lease), as identity, the node's name.
func NewElected(term Term, kubeconfig, identity string, log *slog.Logger) (*Elected, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("%s lease credentials: %w", term.Name(), err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("%s lease client: %w", term.Name(), err)
	}
	return NewElectedClient(term, client, identity, log), nil
}

// NewElectedClient runs term under a lease taken with client, which may
// keep Leases in kube-system.
func NewElectedClient(term Term, client kubernetes.Interface, identity string, log *slog.Logger) *Elected {
	return &Elected{term: term, client: client, identity: identity, log: log, timing: defaultTiming()}
}

var (
	_ lifecycle.Component = (*Elected)(nil)
	_ lifecycle.Readier   = (*Elected)(nil)
	_ lifecycle.SlowStop  = (*Elected)(nil)
)

// Name implements lifecycle.Component.
func (e *Elected) Name() string { return e.term.Name() }

// StopGrace implements lifecycle.SlowStop: the term's own stop (the
// controller-manager waits up to 10 s for its controllers), then the
// lease's release.
func (*Elected) StopGrace() time.Duration { return 20 * time.Second }

// Run stands for the lease until ctx ends, running the term while it
// leads.
func (e *Elected) Run(ctx context.Context) error {
	for {
		if err := e.stand(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.timing.termRetry):
		}
	}
}

// stand runs one election: it waits for the lease, runs the term while it
// holds it, and returns once the term has stopped and the lease is given
// up (lost, or released because ctx ended or the term failed).
func (e *Elected) stand(ctx context.Context) error {
	electorCtx, release := context.WithCancel(context.WithoutCancel(ctx))
	defer release()
	var termDone chan struct{} // set once a term starts; guarded by e.mu
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: e.term.Name()},
			Client:     e.client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
		},
		LeaseDuration: e.timing.leaseDuration, RenewDeadline: e.timing.renewDeadline, RetryPeriod: e.timing.retryPeriod,
		ReleaseOnCancel: true, Name: e.term.Name(),
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				e.mu.Lock()
				termDone = make(chan struct{})
				done := termDone
				e.leading = leading.Err() == nil // this runs in its own goroutine, maybe late
				e.mu.Unlock()
				defer func() {
					e.mu.Lock()
					e.leading = false
					e.mu.Unlock()
					close(done)
				}()
				e.runTerm(ctx, leading)
				release() // a term that stopped must not hold the lease
			},
			OnStoppedLeading: func() {
				e.mu.Lock()
				e.leading = false
				e.mu.Unlock()
			},
		},
	})
	if err != nil {
		return fmt.Errorf("%s leader election: %w", e.term.Name(), err)
	}
	e.mu.Lock()
	e.elector = le
	e.mu.Unlock()
	// When the component stops, end the election once a running term has
	// stopped: the lease goes after the controllers.
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		done := termDone
		e.mu.Unlock()
		if done != nil {
			<-done
		}
		release()
	})
	defer stop()
	le.Run(electorCtx)
	e.mu.Lock()
	done := termDone
	e.mu.Unlock()
	if done != nil {
		<-done // le.Run does not wait for OnStartedLeading
	}
	return nil
}

// runTerm runs the term until the component stops or the lease is lost.
func (e *Elected) runTerm(ctx, leading context.Context) {
	termCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(leading, cancel)()
	e.log.Info("this server leads: starting", "lease", e.term.Name())
	err := e.term.Run(termCtx)
	switch {
	case ctx.Err() != nil:
	case leading.Err() != nil:
		e.log.Warn("lost the lease: stopped; standing again", "lease", e.term.Name(), "err", err)
	default:
		e.log.Error("stopped while leading; giving up the lease and standing again", "lease", e.term.Name(), "err", err)
	}
}

// WaitReady implements lifecycle.Readier: ready once the term serves
// here, or another server holds the lease (it runs the term).
func (e *Elected) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		e.mu.Lock()
		le, leading := e.elector, e.leading
		e.mu.Unlock()
		switch {
		case leading:
			return e.term.WaitReady(ctx)
		case le != nil && le.GetLeader() != "" && le.GetLeader() != e.identity:
			e.log.Info("another server leads", "lease", e.term.Name(), "leader", le.GetLeader())
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no server took its lease: %w", e.term.Name(), context.Cause(ctx))
		case <-tick.C:
		}
	}
}
