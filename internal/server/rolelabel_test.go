package server

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The label and the finalizer wait for the node to register, then are
// set; labels and finalizers the node has already stay.
func TestRoleLabel(t *testing.T) {
	client := fake.NewClientset()
	tried := make(chan struct{}, 100)
	client.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		tried <- struct{}{}
		return false, nil, nil
	})
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go func() {
		done <- roleLabel{client: client, node: "server-1", log: slog.New(slog.DiscardHandler)}.Do(ctx)
	}()
	<-tried // a patch of the node that is not there yet
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "server-1", Labels: map[string]string{"kubernetes.io/os": "linux"}, Finalizers: []string{"other"}}}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || ctx.Err() != nil {
		t.Fatalf("Do = %v (ctx %v)", err, ctx.Err())
	}
	got, err := client.CoreV1().Nodes().Get(ctx, "server-1", metav1.GetOptions{})
	if err != nil || got.Labels[ControlPlaneLabel] != "true" || got.Labels["kubernetes.io/os"] != "linux" {
		t.Errorf("labels = %v, %v; want the control-plane label beside the node's own", got.Labels, err)
	}
	if len(got.Finalizers) != 2 || !slices.Contains(got.Finalizers, "other") || !slices.Contains(got.Finalizers, MemberFinalizer) {
		t.Errorf("finalizers = %v; want the node's own and %s", got.Finalizers, MemberFinalizer)
	}
}
