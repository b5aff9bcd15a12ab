package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/lifecycle"
)

// ControlPlaneLabel marks a server's own node. The kubelet may not set it
// itself (NodeRestriction keeps node-role labels from nodes), so the
// server does, once its node has registered.
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"

// roleLabel is the task that labels the server's own node, and holds it
// with MemberFinalizer: its deletion then removes its etcd member.
type roleLabel struct {
	client kubernetes.Interface
	node   string
	log    *slog.Logger
}

var _ lifecycle.Task = roleLabel{}

// Name implements lifecycle.Task.
func (roleLabel) Name() string { return "control-plane-label" }

// Do implements lifecycle.Task: it waits for the node to register, then
// labels it and adds the finalizer (a strategic merge: other finalizers
// stay). It never fails the start: until the label is set it tries
// again, saying why once.
func (r roleLabel) Do(ctx context.Context) error {
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:"true"},"finalizers":[%q]}}`, ControlPlaneLabel, MemberFinalizer)
	said := false
	_ = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := r.client.CoreV1().Nodes().Patch(ctx, r.node, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !said {
			r.log.Warn("cannot label this server's node yet; retrying", "label", ControlPlaneLabel, "err", err)
			said = true
		}
		return err == nil, nil
	}) // ends early only when the server stops
	return nil
}
