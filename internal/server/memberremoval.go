package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/lifecycle"
)

// MemberFinalizer holds a server's Node, once deleted, until its etcd
// member's removal was tried: a deletion made while no server ran the
// removal (the lease between holders) is acted on when one does.
const MemberFinalizer = "monokube.io/etcd-member"

// memberRemoval removes a server's etcd member when its Node is deleted
// (`kubectl delete node S3`), as `monokube etcd remove S3` does: after the
// quorum check, leadership moved first if S3 leads. It runs on the server
// that holds the cluster controllers' lease (clusterControllers). Server
// nodes carry MemberFinalizer (roleLabel sets it), so a deleted node waits
// for a server to try; the finalizer goes once the removal was tried,
// also when etcd refused it (no quorum left: logged with the numbers, the
// member stays), so a node is never stuck; only a member that could not
// be asked at all keeps it, to try again at the next resync.
type memberRemoval struct {
	client kubernetes.Interface
	dial   func() (*etcd.Cluster, error) // a client of this server's member
	log    *slog.Logger
}

var _ lifecycle.Component = memberRemoval{}

// removalResync is how often a deleted node whose member could not be
// asked is tried again.
const removalResync = 30 * time.Second

// Name implements lifecycle.Component.
func (memberRemoval) Name() string { return "etcd-member-removal" }

// Run implements lifecycle.Component.
func (m memberRemoval) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(m.client, removalResync)
	inf := f.Core().V1().Nodes().Informer()
	seen := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok && n.DeletionTimestamp != nil && slices.Contains(n.Finalizers, MemberFinalizer) {
			if m.remove(ctx, n) {
				m.release(ctx, n.Name)
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
		DeleteFunc: func(obj any) { m.deleted(ctx, obj) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
	return nil
}

// deleted handles a server node deleted without the finalizer (made by a
// monokube before it).
func (m memberRemoval) deleted(ctx context.Context, obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	n, ok := obj.(*corev1.Node)
	if ok && n.Labels[ControlPlaneLabel] == "true" && !slices.Contains(n.Finalizers, MemberFinalizer) {
		m.remove(ctx, n)
	}
}

// remove removes the member of the deleted node n, and reports whether it
// was tried.
func (m memberRemoval) remove(ctx context.Context, n *corev1.Node) bool {
	cluster, err := m.dial()
	if err != nil {
		m.log.Warn("a server's node was deleted, but etcd cannot be asked to remove its member; trying again", "node", n.Name, "err", err)
		return false
	}
	defer cluster.Close()
	ms, err := cluster.Members(ctx)
	if err != nil {
		m.log.Warn("a server's node was deleted, but etcd does not list its members; trying again", "node", n.Name, "err", err)
		return false
	}
	if !slices.ContainsFunc(ms, func(e etcd.Member) bool { return e.Name == n.Name }) {
		m.log.Debug("the deleted node's etcd member is gone already", "node", n.Name)
		return true
	}
	if _, err := cluster.Remove(ctx, n.Name); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("a server's node was deleted, but its etcd member stays", "node", n.Name, "err", err)
		}
		return ctx.Err() == nil
	}
	m.log.Info("a server's node was deleted: removed its etcd member", "node", n.Name)
	return true
}

// release drops MemberFinalizer from the deleted node, which then goes.
func (m memberRemoval) release(ctx context.Context, node string) {
	patch := fmt.Appendf(nil, `{"metadata":{"$deleteFromPrimitiveList/finalizers":[%q]}}`, MemberFinalizer)
	if _, err := m.client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil && ctx.Err() == nil {
		m.log.Warn("cannot drop the etcd-member finalizer of a deleted node; trying again", "node", node, "err", err)
	}
}
