package server

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/lifecycle"
)

// requestPoll is how often the renewal looks for a `certificate rotate`
// request: a stat, nothing more.
const requestPoll = time.Second

// certRenewal renews the server's leaf certificates while it runs: those
// due at every cfg.Certs.CheckEvery (daily), and those a `certificate
// rotate` request names within seconds. The components follow the new
// files by themselves (see identity.Identity.Renew). A failure is logged
// and reported as a Warning event on the Node, and tried again at the
// next check; it never stops the server.
type certRenewal struct {
	cfg    *config.Server
	id     *identity.Identity
	events kubernetes.Interface // for Warning events
	// metricsRenewed renders the addon manifests again: metrics-server's
	// certificate travels in them.
	metricsRenewed func() error
	// republish writes again, after a request (which may follow a CA
	// rotation's step), what carries the CAs: the join objects (the
	// published CA bundles, the pin of the server's token) and the addon
	// manifests (the CAs that metrics-server and the APIService trust).
	republish func() error
	log       *slog.Logger
}

var _ lifecycle.Component = (*certRenewal)(nil)

// Name implements lifecycle.Component.
func (*certRenewal) Name() string { return "certificate-renewal" }

// Run checks until ctx ends; the start's own check was identity.Init's.
func (r *certRenewal) Run(ctx context.Context) error {
	next := time.Now().Add(r.cfg.Certs.CheckEvery)
	var retry time.Time // after a failure, no request is taken before it
	tick := time.NewTicker(requestPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if now.Before(next) && (now.Before(retry) || !r.id.RotatePending()) {
				continue
			}
			next = time.Now().Add(r.cfg.Certs.CheckEvery)
			requested := r.id.RotatePending()
			if !r.renew(ctx, requested) {
				retry = time.Now().Add(min(r.cfg.Certs.CheckEvery, failedRetry))
				next = retry
			}
		}
	}
}

// failedRetry is how soon a failed renewal is tried again (at most).
const failedRetry = time.Minute

// renew runs one check, and republishes the CAs if it was requested; it
// reports whether it succeeded.
func (r *certRenewal) renew(ctx context.Context, requested bool) bool {
	issued, err := r.id.Renew(r.cfg, time.Now(), r.log)
	if err != nil {
		r.log.Error("certificate renewal failed; the current certificates stay in use and a check in a minute tries again", "err", err)
		nodeWarning(ctx, r.events, r.cfg.NodeName, "CertificateRenewalFailed", "monokube-certificates",
			"renewing this server's certificates failed (run `monokube certificate check` on it): "+err.Error(), r.log)
		return false
	}
	if len(issued) > 0 {
		r.log.Info("renewed certificates", "count", len(issued))
	}
	switch {
	case requested:
		if err := r.republish(); err != nil {
			r.log.Error("the cluster's CAs are not published yet", "err", err)
			return false
		}
	case slices.Contains(issued, r.id.Creds.MetricsServing.Cert()):
		if err := r.metricsRenewed(); err != nil {
			r.log.Error("metrics-server's renewed certificate is not in its manifest yet", "err", err)
		}
	}
	return true
}

// renewalComponent is the server's certificate renewal; it records events
// as the controller-manager, whose rights include that.
func renewalComponent(cfg *config.Server, l datadir.Layout, id *identity.Identity, log *slog.Logger) (*certRenewal, error) {
	events, err := controllerClient(cfg, id.Creds, id.Creds.ControllerManager)
	if err != nil {
		return nil, err
	}
	with := log.With("component", "certificate-renewal")
	addons := func() error { return syncAddons(cfg, l, id.Creds, with) }
	return &certRenewal{cfg: cfg, id: id, events: events, log: with, metricsRenewed: addons,
		republish: func() error {
			if _, err := prepareJoin(cfg, l, id); err != nil {
				return err
			}
			return addons()
		}}, nil
}
