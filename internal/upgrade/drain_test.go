package upgrade

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func pod(name, node string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if mutate != nil {
		mutate(p)
	}
	return p
}

// TestDrainEvictsWhatADrainEvicts checks the choice of pods and the
// cordon; the eviction API itself is the apiserver's (covered in e2e).
func TestDrainEvictsWhatADrainEvicts(t *testing.T) {
	isController := true
	objs := []runtime.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}},
		pod("web", "n1", nil),
		pod("elsewhere", "n2", nil),
		pod("static", "n1", func(p *corev1.Pod) { p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"} }),
		pod("ds", "n1", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "d", Controller: &isController}}
		}),
		pod("done", "n1", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
	}
	c := fake.NewClientset(objs...)
	var evicted []string
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "eviction" {
			evicted = append(evicted, a.(k8stesting.CreateAction).GetObject().(metav1.Object).GetName())
			return true, nil, nil
		}
		return false, nil, nil
	})
	step := Step{Prev: Record{Kubernetes: "v1.36.1"}, Cur: Record{Kubernetes: "v1.37.2"}, MinorChange: true}
	d := NewDrainer(step, "n1", func() (kubernetes.Interface, error) { return c, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := d.drain(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// The fake's list ignores field selectors: "elsewhere" shows that the
	// selector, not the filter, keeps other nodes' pods out in a real cluster.
	want := map[string]bool{"web": true, "elsewhere": true}
	for _, e := range evicted {
		if !want[e] {
			t.Errorf("evicted %s", e)
		}
		delete(want, e)
	}
	if len(want) != 0 {
		t.Errorf("not evicted: %v", want)
	}
	n, _ := c.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if !n.Spec.Unschedulable || n.Annotations[CordonAnnotation] != "v1.36.1 -> v1.37.2" {
		t.Errorf("node not cordoned by monokube: unschedulable=%v annotations=%v", n.Spec.Unschedulable, n.Annotations)
	}
}

func TestUncordonOnlyOwnCordonAfterFreshReady(t *testing.T) {
	stale := metav1.NewTime(time.Now().Add(-time.Hour))
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: stale}}
	if readySince(n, metav1.Now()) {
		t.Error("a stale Ready condition counts as ready")
	}
	n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Now().Add(time.Second))
	if !readySince(n, metav1.Now()) {
		t.Error("a fresh Ready condition does not count")
	}

	n.Spec.Unschedulable = true
	n.Annotations = map[string]string{CordonAnnotation: "v1.36.1 -> v1.37.2"}
	c := fake.NewClientset(n)
	u := NewUncordoner("n1", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.uncordonWhenReady(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, _ := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if got.Spec.Unschedulable || got.Annotations[CordonAnnotation] != "" {
		t.Errorf("still cordoned: %v %v", got.Spec.Unschedulable, got.Annotations)
	}
}

func TestDrainKeepsSomeoneElsesCordon(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{Unschedulable: true}}
	c := fake.NewClientset(n)
	step := Step{Prev: Record{Kubernetes: "v1.36.1"}, Cur: Record{Kubernetes: "v1.37.2"}, MinorChange: true}
	d := NewDrainer(step, "n1", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := d.drain(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	got, _ := c.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if _, marked := got.Annotations[CordonAnnotation]; marked || !got.Spec.Unschedulable {
		t.Errorf("an admin's cordon became monokube's: %v %v", got.Spec.Unschedulable, got.Annotations)
	}
}
