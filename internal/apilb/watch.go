package apilb

import (
	"context"
	"net"
	"strconv"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/fsutil"
)

// The apiservers publish their addresses as the endpoints of the
// default/kubernetes Service, under this port name.
const (
	serviceName = "kubernetes"
	portName    = "https"
)

// watchLoop waits for the node's credentials, then keeps the pool's list
// equal to the published apiserver addresses until ctx ends.
func (lb *LB) watchLoop(ctx context.Context) {
	if lb.cfg.Learn != nil {
		lb.cfg.Learn(ctx, lb.learned)
		return
	}
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(context.Context) (bool, error) {
		return fsutil.Exists(lb.cfg.Kubeconfig), nil
	})
	if err != nil {
		return // stopping
	}
	rc, err := clientcmd.BuildConfigFromFlags("", lb.cfg.Kubeconfig)
	if err != nil {
		lb.log.Warn("cannot watch for apiservers: the node keeps the servers it knows", "err", err)
		return
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		lb.log.Warn("cannot watch for apiservers: the node keeps the servers it knows", "err", err)
		return
	}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=" + serviceName
		}))
	inf := f.Discovery().V1().EndpointSlices().Informer()
	refresh := func(any) { lb.learn(inf.GetStore().List()) }
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: refresh, UpdateFunc: func(_, o any) { refresh(o) }, DeleteFunc: refresh,
	}); err != nil {
		lb.log.Warn("cannot watch for apiservers: the node keeps the servers it knows", "err", err)
		return
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
}

// learn sets the pool's list to the addresses objs (EndpointSlices)
// publish.
func (lb *LB) learn(objs []any) {
	var eps []*discoveryv1.EndpointSlice
	for _, o := range objs {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok {
			eps = append(eps, s)
		}
	}
	lb.learned(published(eps))
}

// learned sets the pool's list to addrs.
func (lb *LB) learned(addrs []string) {
	if lb.pool.set(addrs) {
		lb.log.Info("the servers the load balancer knows changed", "what", lb.cfg.What, "servers", lb.pool.addrs())
		lb.save()
	}
}

// published lists the host:port of every ready apiserver endpoint in eps.
func published(eps []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range eps {
		port := ""
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == portName) {
				port = strconv.Itoa(int(*p.Port))
			}
		}
		if port == "" {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				out = append(out, net.JoinHostPort(a, port))
			}
		}
	}
	return out
}
