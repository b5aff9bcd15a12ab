package upgrade

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/lifecycle"
)

// CordonAnnotation marks a node monokube cordoned for an upgrade, so it
// uncordons only its own cordon, even after a crash in between.
const CordonAnnotation = "monokube.io/upgrade-cordoned"

// pollEvery is how often the node's state is read while waiting.
const pollEvery = 2 * time.Second

// Drainer is the node component placed before the kubelet when the
// Kubernetes minor version changed: it cordons the node and evicts its pods
// (the new kubelet would restart their containers anyway), then is done,
// so the kubelet starts and stops them. Uncordoner undoes the cordon. Both
// act as the node itself: NodeRestriction lets a node change its own Node
// and evict its own pods.
type Drainer struct {
	step   Step
	node   string
	client func() (kubernetes.Interface, error)
	log    *slog.Logger
}

// NewDrainer returns the task that drains node for step.
func NewDrainer(step Step, node string, client func() (kubernetes.Interface, error), log *slog.Logger) *Drainer {
	return &Drainer{step: step, node: node, client: client, log: log}
}

var _ lifecycle.Task = (*Drainer)(nil)

// Name implements lifecycle.Task.
func (d *Drainer) Name() string { return "upgrade-drain" }

// Do implements lifecycle.Task.
func (d *Drainer) Do(ctx context.Context) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	d.log.Info("Kubernetes minor version changed: cordoning and draining this node before its kubelet starts",
		"from", d.step.Prev.Kubernetes, "to", d.step.Cur.Kubernetes)
	if err := d.drain(ctx, c); err != nil {
		d.log.Warn("drain incomplete; the kubelet restarts the remaining containers", "err", err)
	}
	return nil
}

// Uncordoner is the node's last task, run in the background: once the node is Ready on this
// version it uncordons it if monokube cordoned it for an upgrade, also
// after a crash in between.
type Uncordoner struct {
	since  metav1.Time // before this start's kubelet: older status is stale
	node   string
	client func() (kubernetes.Interface, error)
	log    *slog.Logger
}

// NewUncordoner returns the task that uncordons node; make it before the
// node's kubelet starts.
func NewUncordoner(node string, client func() (kubernetes.Interface, error), log *slog.Logger) *Uncordoner {
	return &Uncordoner{since: metav1.Now(), node: node, client: client, log: log}
}

var _ lifecycle.Task = (*Uncordoner)(nil)

// Name implements lifecycle.Task.
func (u *Uncordoner) Name() string { return "upgrade-uncordon" }

// Do implements lifecycle.Task. Not being able to uncordon is logged, not
// a failure: the node runs, and the message says what to do.
func (u *Uncordoner) Do(ctx context.Context) error {
	c, err := u.client()
	if err != nil {
		return err
	}
	if err := u.uncordonWhenReady(ctx, c); err != nil && ctx.Err() == nil {
		u.log.Warn("could not uncordon this node after the upgrade: run kubectl uncordon "+u.node, "err", err)
	}
	return nil
}

// drain cordons the node (marking the cordon as monokube's) and evicts
// every pod on it except mirror pods and DaemonSet pods. It does not wait
// for the pods to go: only the kubelet about to start can stop them.
func (d *Drainer) drain(ctx context.Context, c kubernetes.Interface) error {
	if err := d.cordon(ctx, c); err != nil {
		return fmt.Errorf("cordon: %w", err)
	}
	pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", d.node).String(),
	})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	evicted := 0
	for _, p := range pods.Items {
		if !evictable(p) {
			continue
		}
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		if err := c.CoreV1().Pods(p.Namespace).EvictV1(ctx, ev); err != nil && !apierrors.IsNotFound(err) {
			d.log.Warn("pod not evicted (a PodDisruptionBudget?); the kubelet restarts it in place", "pod", p.Namespace+"/"+p.Name, "err", err)
			continue
		}
		evicted++
	}
	d.log.Info("node cordoned and drained", "evicted", evicted)
	return nil
}

// cordon marks the node unschedulable as monokube's upgrade cordon, unless
// someone else cordoned it already: that cordon stays theirs to lift.
func (d *Drainer) cordon(ctx context.Context, c kubernetes.Interface) error {
	return retry(ctx, func(ctx context.Context) error {
		n, err := c.CoreV1().Nodes().Get(ctx, d.node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ours := n.Annotations[CordonAnnotation]; n.Spec.Unschedulable && !ours {
			d.log.Info("node already cordoned (not by monokube): it stays cordoned after the upgrade")
			return nil
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"unschedulable":true}}`,
			CordonAnnotation, d.step.Prev.Kubernetes+" -> "+d.step.Cur.Kubernetes)
		_, err = c.CoreV1().Nodes().Patch(ctx, d.node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	})
}

// evictable leaves out what a drain leaves: mirror (static) pods,
// DaemonSet pods, and pods that have finished.
func evictable(p corev1.Pod) bool {
	if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return false
	}
	if ref := metav1.GetControllerOf(&p); ref != nil && ref.Kind == "DaemonSet" {
		return false
	}
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// uncordonWhenReady waits until the node is Ready and, if monokube
// cordoned it for an upgrade, uncordons it.
func (u *Uncordoner) uncordonWhenReady(ctx context.Context, c kubernetes.Interface) error {
	var node *corev1.Node
	err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(ctx context.Context) (bool, error) {
		n, err := c.CoreV1().Nodes().Get(ctx, u.node, metav1.GetOptions{})
		if err != nil {
			return false, nil // keep waiting through API hiccups
		}
		node = n
		return readySince(n, u.since), nil
	})
	if err != nil {
		return err
	}
	from, cordoned := node.Annotations[CordonAnnotation]
	if !cordoned {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}},"spec":{"unschedulable":null}}`, CordonAnnotation)
	if err := retry(ctx, func(ctx context.Context) error {
		_, err := c.CoreV1().Nodes().Patch(ctx, u.node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}); err != nil {
		return err
	}
	u.log.Info("node Ready on the new version: uncordoned", "upgrade", from)
	return nil
}

// readySince reports whether a kubelet has reported n Ready since t.
func readySince(n *corev1.Node, t metav1.Time) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Before(&t)
		}
	}
	return false
}

// retry runs f until it succeeds, for at most a minute.
func retry(ctx context.Context, f func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, pollEvery, time.Minute, true, func(ctx context.Context) (bool, error) {
		last = f(ctx)
		return last == nil, nil
	})
	if err != nil && last != nil {
		return last
	}
	return err
}
