package server

import (
	"context"
	"log/slog"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/lifecycle"
)

// memberRemoval removes a server's etcd member when its Node is deleted
// (`kubectl delete node S3`), as `monokube etcd remove S3` does: after the
// quorum check, leadership moved first if S3 leads. Every server watches;
// the first to act removes the member and the others find it gone. A
// removal etcd refuses (no quorum left) is logged with the numbers, and
// the member stays.
type memberRemoval struct {
	client kubernetes.Interface
	dial   func() (*etcd.Cluster, error) // a client of this server's member
	log    *slog.Logger
}

var _ lifecycle.Component = memberRemoval{}

// Name implements lifecycle.Component.
func (memberRemoval) Name() string { return "etcd-member-removal" }

// Run implements lifecycle.Component.
func (m memberRemoval) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(m.client, 0)
	inf := f.Core().V1().Nodes().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) { m.deleted(ctx, obj) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
	return nil
}

func (m memberRemoval) deleted(ctx context.Context, obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok || n.Labels[ControlPlaneLabel] != "true" {
		return // an agent's node: no etcd member
	}
	cluster, err := m.dial()
	if err != nil {
		m.log.Warn("a server's node was deleted, but etcd cannot be asked to remove its member", "node", n.Name, "err", err)
		return
	}
	defer cluster.Close()
	if _, err := cluster.Remove(ctx, n.Name); err != nil && ctx.Err() == nil {
		if ms, lerr := cluster.Members(ctx); lerr == nil && !slices.ContainsFunc(ms, func(e etcd.Member) bool { return e.Name == n.Name }) {
			m.log.Debug("another server removed the deleted node's etcd member", "node", n.Name)
			return
		}
		m.log.Warn("a server's node was deleted, but its etcd member stays", "node", n.Name, "err", err)
		return
	}
	m.log.Info("a server's node was deleted: removed its etcd member", "node", n.Name)
}
