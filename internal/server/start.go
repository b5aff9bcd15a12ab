package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"k8s.io/client-go/rest"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/sysreq"
	"github.com/monokube/monokube/internal/systemd"
	"github.com/monokube/monokube/internal/upgrade"
)

// Run starts a server in named phases, each taking what the ones before it
// made, then runs its components until ctx ends:
//
//	preflight  the machine, another monokube on the dirs, the data's version
//	identity   the dirs and the cluster's identity (identity.Init; a
//	           joining server takes the cluster's first)
//	pre-run    work on the data before anything reads it: a joining
//	           server's etcd member is added, --cluster-reset is checked,
//	           a snapshot restored (restore.go), a snapshot taken before
//	           a minor upgrade, or the other members asked whether they
//	           still count this one
//	prepare    every other side effect: addon and join manifests, the
//	           node's helpers, routes, sysctls and rendered configs
//	build      the component list, with no side effects
//	run        the group, in start order
//
// A start that fails after prepare and before every component is ready
// puts back what prepare changed on the host (node.Plan.Undo).
func Run(ctx context.Context, cfg *config.Server, log *slog.Logger) error {
	s := &start{ctx: ctx, cfg: cfg, log: log, layout: datadir.Layout{Data: cfg.DataDir, Run: cfg.RunDir}}
	s.lock = datadir.NewNodeLock(s.layout)
	defer s.lock.Release()
	for _, p := range []struct {
		name string
		run  func() error
	}{
		{"preflight", s.preflight}, {"identity", s.identity}, {"pre-run", s.preRun},
		{"prepare", s.prepare}, {"build", s.build},
	} {
		if err := p.run(); err != nil {
			s.undo()
			return err // each phase's errors say what and what to do
		}
		log.Debug("start phase done", "phase", p.name)
	}
	err := s.group.Run(ctx)
	switch {
	case errors.Is(err, etcd.ErrNotCaughtUp), errors.Is(err, etcd.ErrRemoved) && promotionPending(s.layout):
		return undoJoin(s.layout, err) // a join that failed: never half-kept
	case errors.Is(err, etcd.ErrRemoved):
		return retire(s.layout, log)
	}
	return err
}

// start is one server start; each phase fills in what the next reads.
type start struct {
	ctx    context.Context // the start's, for the phases that ask the cluster
	cfg    *config.Server
	log    *slog.Logger
	layout datadir.Layout
	lock   *datadir.NodeLock

	host  sysreq.Node        // preflight
	step  upgrade.Step       // preflight
	id    *identity.Identity // identity
	db    dbStart            // pre-run: a join or a cluster reset
	rest  *restoring         // identity: a snapshot to restore
	tok   serverToken        // prepare
	plan  *node.Plan         // prepare; nil with --disable-agent
	group *lifecycle.Group   // build
}

func (s *start) preflight() error {
	if err := s.lock.Early(); err != nil {
		return err
	}
	host, report := Preflight(s.cfg, sysreq.OS())
	if err := report.Admit(s.log, host.Adaptations()...); err != nil {
		return err
	}
	prev, err := upgrade.Load(s.layout.VersionFile())
	if err != nil {
		return err
	}
	s.host = host
	s.step, err = upgrade.Check(prev, upgrade.Current(), true, s.cfg.DataDir)
	return err
}

func (s *start) identity() error {
	if s.cfg.Restore.Path != "" {
		return s.restoreIdentity()
	}
	if err := errors.Join(checkRemoved(s.layout, joining(s.cfg, s.layout)), checkUnstartedJoin(s.cfg, s.layout), checkInterruptedRestore(s.cfg, s.layout)); err != nil {
		return err
	}
	if joining(s.cfg, s.layout) {
		if err := s.layout.EnsureServer(); err != nil {
			return err
		}
		mj, err := takeIdentity(s.ctx, s.cfg, s.layout, s.log)
		if err != nil {
			return err
		}
		s.db.join = mj
		if err := clearRemoved(s.layout); err != nil {
			return err
		}
	} else if s.cfg.Join.Server != "" {
		s.log.Info("this server is a member of its cluster already: --server and --token are not needed any more", "server", s.cfg.Join.Server)
	}
	return s.prepareIdentity()
}

// prepareIdentity makes or keeps the identity and this server's leaves.
func (s *start) prepareIdentity() error {
	id, err := Prepare(s.cfg, s.layout, node.NewCreds(s.layout), s.log)
	if err != nil {
		return err
	}
	s.id = id
	if err := id.ShowRecoveryKey(terminal()); err != nil {
		return err
	}
	return s.lock.Take() // the dirs a first start made
}

// restoreIdentity is the identity phase of a restore: the snapshot is
// checked whole before its identity is written (openRestore).
func (s *start) restoreIdentity() error {
	if s.cfg.Join.Server != "" {
		return errors.New("--cluster-reset-restore-path makes this server a cluster of its own from the snapshot: leave out --server and --token")
	}
	r, err := openRestore(s.ctx, s.cfg, s.layout)
	if err != nil {
		return err
	}
	s.rest = r
	if err := r.begin(s.layout, control.NewCreds(s.layout), s.log); err != nil {
		return err // undo drops the scratch copy
	}
	return s.prepareIdentity()
}

// preRun is where work on the data goes that must happen before any
// component reads it: a restore, a cluster reset checked, a joining
// server's etcd member added to the cluster, a snapshot before a minor
// upgrade, and the check that the other members still count this one.
func (s *start) preRun() error {
	var err error
	switch {
	case s.rest != nil:
		return s.rest.apply(s.cfg, s.layout, s.log)
	case s.cfg.ClusterReset:
		s.db.reset, err = planReset(s.ctx, s.cfg, s.layout, s.id.Creds, s.log)
		return err
	case s.db.join != nil:
		return nil
	}
	if s.db.join, err = memberToJoin(s.layout, s.id.Creds, s.log); err != nil || s.db.join != nil {
		return err // a join interrupted once etcd had started
	}
	if err := stillMember(s.ctx, s.cfg, s.layout, s.id.Creds, s.log); err != nil {
		return err
	}
	if s.step.MinorChange {
		return preUpgradeSnapshot(s.cfg, s.layout, s.step.Prev, s.log)
	}
	return nil
}

func (s *start) prepare() error {
	if err := syncAddons(s.cfg, s.layout, s.id.Creds, s.log); err != nil {
		return err
	}
	tok, err := prepareJoin(s.cfg, s.layout, s.id)
	if err != nil {
		return err
	}
	s.tok = tok
	if s.cfg.DisableAgent {
		return nil
	}
	assets, err := node.LoadAssets(s.layout.Data)
	if err != nil {
		return err
	}
	nodeCfg := NodeConfig(s.cfg)
	nodeCfg.Upgrade = s.step
	s.plan, err = node.Prepare(nodeCfg, s.layout, node.NewCreds(s.layout), s.host, assets, s.log)
	return err
}

func (s *start) build() error {
	components, err := allComponents(s.cfg, s.layout, s.id, s.tok, s.db, s.plan, s.log)
	if err != nil {
		return err
	}
	// The control plane's loopback clients would log warnings about what
	// they use themselves. The handler is process-wide, so the role sets
	// it, not a component.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	s.group = lifecycle.NewGroup(s.log, components...)
	s.group.OnReady(upgrade.RecordVersion(s.layout.VersionFile(), s.log))
	s.group.OnReady(systemd.TakeNotifier().ReadyHook(s.log))
	s.group.OnStartFailure(s.undo)
	if s.db.reset != nil {
		s.group.OnReady(announceReset(s.cfg, s.db.reset, s.log))
	}
	if s.rest != nil {
		s.group.OnReady(announceRestore(s.cfg, s.rest, s.log))
	}
	return nil
}

// undo puts back the node's host changes, if prepare made any, and drops
// the copy of a snapshot's etcd data that a restore made.
func (s *start) undo() {
	if s.plan != nil {
		s.plan.Undo(s.log)
	}
	if s.rest != nil {
		s.rest.discard()
	}
}

// terminal is the process's stdout when a person reads it (a character
// device, not journald's socket or a file), else nil: a secret shown once
// goes there and never into a log.
func terminal() io.Writer {
	st, err := os.Stdout.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return os.Stdout
}
