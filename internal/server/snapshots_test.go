package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/snapshot"
)

// TestScheduledSnapshotFails: a snapshot that fails (a full disk) is a
// Warning event on the server's Node, and the schedule goes on.
func TestScheduledSnapshotFails(t *testing.T) {
	events := fake.NewClientset()
	s := &snapshotSchedule{
		cfg: config.Snapshots{Dir: t.TempDir(), Retention: 2}, node: "server-1", events: events,
		log: slog.New(slog.DiscardHandler),
		save: func(context.Context) (snapshot.Entry, error) {
			return snapshot.Entry{}, errors.Join(errors.New("write snapshot file"), syscall.ENOSPC)
		},
	}
	s.take(t.Context())
	s.take(t.Context())
	list, err := events.CoreV1().Events(metav1.NamespaceDefault).List(t.Context(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("events: %v, %v; want two", list, err)
	}
	ev := list.Items[0]
	if ev.Type != "Warning" || ev.Reason != "EtcdSnapshotFailed" || ev.InvolvedObject.Kind != "Node" ||
		ev.InvolvedObject.Name != "server-1" || !strings.Contains(ev.Message, "no space left on device") {
		t.Errorf("event %+v: want a Warning EtcdSnapshotFailed on Node server-1 saying why", ev)
	}
}
