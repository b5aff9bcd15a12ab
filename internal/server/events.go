package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// nodeWarning records a Warning event with reason on node, from component,
// best effort: a failure is logged.
func nodeWarning(ctx context.Context, client kubernetes.Interface, node, reason, component, message string, log *slog.Logger) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		// Named as client-go's recorder names events: object, then time.
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", node, now.UnixNano()), Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: node},
		Reason:         reason, Type: corev1.EventTypeWarning,
		Message:        message,
		Source:         corev1.EventSource{Component: component, Host: node},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := client.CoreV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		log.Warn("could not record a Warning event", "reason", reason, "err", err)
	}
}
