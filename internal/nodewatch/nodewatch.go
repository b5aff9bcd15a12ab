// Package nodewatch runs a reconcile function over all Node objects
// whenever any of them changes: the loop behind the controllers that
// mirror nodes into CoreDNS and into routes.
package nodewatch

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Run calls sync with every node after each change (bursts coalesce into
// one call) until ctx ends. A sync that fails should log and wait for the
// next change; Run itself fails only if it cannot watch.
func Run(ctx context.Context, client kubernetes.Interface, sync func([]*corev1.Node)) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, DeleteFunc: poke, UpdateFunc: func(_, o any) { poke(o) },
	}); err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		list, err := nodes.Lister().List(labels.Everything())
		if err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		sync(list)
	}
}
