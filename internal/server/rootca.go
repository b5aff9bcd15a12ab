package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubernetes/pkg/controller/certificates/rootcacertpublisher"
)

// rootCAPoll is how often the publisher looks at the server CA's file.
const rootCAPoll = 5 * time.Second

// rootCAPublisher keeps ConfigMap kube-root-ca.crt in every namespace
// holding the server CA's file as it is now: what pods trust the
// apiserver with (their service-account volume's ca.crt). It runs
// upstream's publisher, which takes its CA once, and starts it again with
// the new bundle when the file changes: both CAs during a CA rotation, the
// new one alone after. The controller-manager's own publisher is off
// (control.ControllerManagerArgs).
type rootCAPublisher struct {
	client kubernetes.Interface
	file   string
	log    *slog.Logger
}

// Name implements lifecycle.Component.
func (*rootCAPublisher) Name() string { return "root-ca-publisher" }

// Run publishes until ctx ends.
func (p *rootCAPublisher) Run(ctx context.Context) error {
	var (
		current []byte
		stop    = func() {}
		done    sync.WaitGroup
	)
	defer func() { stop(); done.Wait() }()
	tick := time.NewTicker(rootCAPoll)
	defer tick.Stop()
	for {
		ca, err := os.ReadFile(p.file)
		switch {
		case err != nil:
			p.log.Error("cannot read the server CA; kube-root-ca.crt keeps the one published", "err", err)
		case !bytes.Equal(ca, current):
			stop()
			done.Wait()
			run, cancel := context.WithCancel(ctx)
			stop = cancel
			if err := p.start(run, ca, &done); err != nil {
				return err
			}
			if current != nil {
				p.log.Info("the server CA changed: publishing it in every namespace's kube-root-ca.crt")
			}
			current = ca
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// start runs upstream's publisher of ca until ctx ends.
func (p *rootCAPublisher) start(ctx context.Context, ca []byte, done *sync.WaitGroup) error {
	f := informers.NewSharedInformerFactory(p.client, 0)
	pub, err := rootcacertpublisher.NewPublisher(f.Core().V1().ConfigMaps(), f.Core().V1().Namespaces(), p.client, ca)
	if err != nil {
		return fmt.Errorf("root CA publisher: %w", err)
	}
	f.Start(ctx.Done())
	done.Go(func() { pub.Run(ctx, 1) })
	done.Go(func() { <-ctx.Done(); f.Shutdown() })
	return nil
}

// RootCARules are the publisher's rights: upstream's, and the reads of its
// informers.
func RootCARules() (cluster, system []rbacv1.PolicyRule) {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
	}, nil
}
