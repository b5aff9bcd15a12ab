package server

import (
	"context"
	"errors"
	"log/slog"

	"k8s.io/client-go/rest"

	"github.com/monokube/monokube/internal/config"
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
//	           server's etcd member is added, or --cluster-reset is
//	           checked (a restore, later)
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
	if err := errors.Join(checkRemoved(s.layout, joining(s.cfg, s.layout)), checkUnstartedJoin(s.cfg, s.layout)); err != nil {
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
	id, err := Prepare(s.cfg, s.layout, node.NewCreds(s.layout), s.log)
	if err != nil {
		return err
	}
	s.id = id
	return s.lock.Take() // the dirs a first start made
}

// preRun is where work on the data goes that must happen before any
// component reads it: a joining server's etcd member is added to the
// cluster here, or a cluster reset checked (restoring an etcd snapshot
// will go here too).
func (s *start) preRun() error {
	var err error
	if s.cfg.ClusterReset {
		s.db.reset, err = planReset(s.ctx, s.cfg, s.layout, s.id.Creds, s.log)
		return err
	}
	if s.db.join == nil { // a join interrupted once etcd had started, if any
		s.db.join, err = memberToJoin(s.layout, s.id.Creds, s.log)
	}
	return err
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
	return nil
}

// undo puts back the node's host changes, if prepare made any.
func (s *start) undo() {
	if s.plan != nil {
		s.plan.Undo(s.log)
	}
}
