package etcd

import (
	"log/slog"
	"net/netip"
	"testing"
)

func TestURLs(t *testing.T) {
	if got, want := ClientURL(), "https://127.0.0.1:2379"; got != want {
		t.Errorf("ClientURL() = %q, want %q", got, want)
	}
	for ip, want := range map[string]string{
		"10.0.0.5": "https://10.0.0.5:2380",
		"fd00::5":  "https://[fd00::5]:2380",
	} {
		if got := PeerURL(netip.MustParseAddr(ip)); got != want {
			t.Errorf("PeerURL(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestEmbedConfig(t *testing.T) {
	e := New(Config{NodeName: "node-a", NodeIP: netip.MustParseAddr("fd00::5")}, slog.New(slog.DiscardHandler))
	ec := e.embedConfig()
	checks := map[string][2]string{
		"name":            {ec.Name, "node-a"},
		"client URL":      {ec.ListenClientUrls[0].String(), ClientURL()},
		"servers' URL":    {ec.ListenClientUrls[1].String(), "https://[fd00::5]:2379"},
		"advertised":      {ec.AdvertiseClientUrls[0].String(), ClientURLOn(netip.MustParseAddr("fd00::5"))},
		"peer URL":        {ec.ListenPeerUrls[0].String(), "https://[fd00::5]:2380"},
		"initial cluster": {ec.InitialCluster, "node-a=https://[fd00::5]:2380"},
	}
	for what, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", what, c[0], c[1])
		}
	}
}

// A joining member starts into the existing cluster it was added to.
func TestEmbedConfigJoin(t *testing.T) {
	joined := "node-a=https://10.0.0.1:2380,node-b=https://10.0.0.2:2380"
	e := New(Config{NodeName: "node-b", NodeIP: netip.MustParseAddr("10.0.0.2"), InitialCluster: joined}, slog.New(slog.DiscardHandler))
	if ec := e.embedConfig(); ec.InitialCluster != joined || ec.ClusterState != "existing" {
		t.Errorf("initial cluster %q, state %q; want %q, existing", ec.InitialCluster, ec.ClusterState, joined)
	}
	if ec := New(Config{NodeName: "node-a", NodeIP: netip.MustParseAddr("10.0.0.1")}, slog.New(slog.DiscardHandler)).embedConfig(); ec.ClusterState != "new" {
		t.Errorf("a first member's cluster state = %q, want new", ec.ClusterState)
	}
}
