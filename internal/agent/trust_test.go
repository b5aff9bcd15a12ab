package agent

import (
	"log/slog"
	"os"
	"slices"
	"testing"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/identity"
)

// A node follows the embedded registry mirror being turned on and off on
// the servers: it records the cluster's choice in cluster.json (read at
// the next start) and restarts, once per change.
func TestFollowRegistry(t *testing.T) {
	l := datadir.Layout{Data: t.TempDir(), Run: t.TempDir()}
	if err := os.MkdirAll(l.AgentEtc(), 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(oldClusterFile) // a node from before the mirror: no embedded-registry key
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clusterFile(l), old, 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := loadJoined(clusterFile(l))
	if err != nil {
		t.Fatal(err)
	}
	ts := &trustSync{layout: l, registries: j.Settings.EmbeddedRegistry, log: slog.New(slog.DiscardHandler)}
	for _, step := range []struct {
		published []string
		restart   bool
	}{
		{nil, false},          // a server from before the mirror
		{[]string{}, false},   // off
		{[]string{"*"}, true}, // turned on
		{[]string{"*"}, false},
		{[]string{"docker.io", "registry.example:5000"}, true},
		{[]string{}, true}, // turned off
	} {
		why, err := ts.followRegistry(identity.ClusterSettings{EmbeddedRegistry: step.published})
		if err != nil || (why != "") != step.restart {
			t.Fatalf("published %q to a node running %q: restart %q, %v; want a restart %v", step.published, ts.registries, why, err, step.restart)
		}
		got, err := loadJoined(clusterFile(l))
		if err != nil {
			t.Fatal(err)
		}
		if step.restart && !slices.Equal(got.Settings.EmbeddedRegistry, step.published) {
			t.Errorf("cluster.json holds %q after %q was published", got.Settings.EmbeddedRegistry, step.published)
		}
		if step.restart { // the restarted node runs what cluster.json says
			ts.registries = got.Settings.EmbeddedRegistry
		}
		if got.Settings.ClusterCIDR != j.Settings.ClusterCIDR || string(got.Settings.ClientCA) != string(j.Settings.ClientCA) {
			t.Errorf("following the mirror changed other settings: %+v", got.Settings)
		}
	}
}
