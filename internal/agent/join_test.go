package agent

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/fsutil"
)

// oldClusterFile is cluster.json as the agent of f9db08a, the last version
// that kept the settings as a string map, wrote it (fsutil.SaveState).
const oldClusterFile = "testdata/cluster-f9db08a.json"

// A node that joined with an earlier version restarts on its cluster.json,
// and this version writes the same file again.
func TestLoadJoinedReadsTheEarlierFormat(t *testing.T) {
	j, err := loadJoined(oldClusterFile)
	if err != nil {
		t.Fatal(err)
	}
	s := j.Settings
	if j.Server != "https://192.168.1.1:6443" || s.ClusterCIDR != netip.MustParsePrefix("10.42.0.0/16") ||
		s.ServiceCIDR != netip.MustParsePrefix("10.43.0.0/16") || s.ClusterDNS != netip.MustParseAddr("10.43.0.10") ||
		s.ClusterDomain != "cluster.local" || !bytes.HasPrefix(s.ClientCA, []byte("-----BEGIN CERTIFICATE-----\n")) {
		t.Errorf("loadJoined(%s) = %+v", oldClusterFile, j)
	}
	again := filepath.Join(t.TempDir(), "cluster.json")
	if err := fsutil.SaveState(again, j); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(oldClusterFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(again); !bytes.Equal(got, want) {
		t.Errorf("cluster.json written again differs from the earlier version's:\n%s\nwant\n%s", got, want)
	}
}

func TestLoadJoined(t *testing.T) {
	old, err := os.ReadFile(oldClusterFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, content string
		joined        bool
		wantErr       []string
	}{
		{name: "never joined"},
		{name: "damaged", content: `{"server": "https://192.168.1.1:6443", "sett`},
		{name: "no server", content: `{"settings": {}}`},
		{name: "earlier version", content: string(old), joined: true},
		{name: "bad cluster CIDR", content: strings.Replace(string(old), `"10.42.0.0/16"`, `"10.42.0.0"`, 1),
			wantErr: []string{"cluster-cidr", "remove it to join again"}},
		{name: "key missing", content: strings.Replace(string(old), `"cluster-domain"`, `"domain"`, 1),
			wantErr: []string{"cluster-domain is missing", "remove it to join again"}},
		{name: "no settings", content: `{"server": "https://192.168.1.1:6443"}`,
			wantErr: []string{"no settings", "remove it to join again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cluster.json")
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			j, err := loadJoined(path)
			for _, want := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
					t.Errorf("loadJoined = %v, want an error naming %s and saying %q", err, path, want)
				}
			}
			if tc.wantErr == nil && (err != nil || (j.Server != "") != tc.joined) {
				t.Errorf("loadJoined = %+v, %v; want joined %v", j, err, tc.joined)
			}
		})
	}
}
