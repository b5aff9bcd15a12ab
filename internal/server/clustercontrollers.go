package server

import (
	"context"
	"log/slog"

	"github.com/monokube/monokube/internal/lifecycle"
)

// clusterLease is the lease of monokube's own cluster-wide controllers
// (kube-system/monokube-controllers).
const clusterLease = "monokube-controllers"

// clusterControllers are monokube's own controllers that act on the whole
// cluster rather than on their server: the CSR approver, CoreDNS's node
// names and the etcd member removal. Of several servers one runs them at
// a time (control.Elected, as the controller-manager); each keeps its own
// client and rights. They gate nothing, so a term is ready once started.
type clusterControllers struct {
	components []lifecycle.Component
	log        *slog.Logger
}

// Name implements control.Term: the lease's name.
func (clusterControllers) Name() string { return clusterLease }

// Run implements control.Term: the controllers, as one group, for one
// term.
func (c clusterControllers) Run(ctx context.Context) error {
	return lifecycle.NewGroup(c.log, c.components...).Run(ctx)
}

// WaitReady implements control.Term.
func (clusterControllers) WaitReady(context.Context) error { return nil }
