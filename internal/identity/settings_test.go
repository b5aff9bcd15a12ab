package identity

import (
	"encoding/json"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/testutil"
)

func testSettings(t *testing.T) ClusterSettings {
	t.Helper()
	ca, err := pki.NewCA("test-client-ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ClusterSettings{
		ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16"),
		ClusterDNS: netip.MustParseAddr("10.43.0.10"), ClusterDomain: "cluster.local",
		ClientCA: pki.CertPEM(ca.Cert),
	}
}

// The encoded keys are the wire format between servers and agents of
// different versions.
func TestEncodeKeys(t *testing.T) {
	s := testSettings(t)
	want := map[string]string{
		"cluster-cidr": "10.42.0.0/16", "service-cidr": "10.43.0.0/16", "cluster-dns": "10.43.0.10",
		"cluster-domain": "cluster.local", "client-ca.crt": string(s.ClientCA),
	}
	if got := s.Encode(); !maps.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	s := testSettings(t)
	got, err := DecodeClusterSettings(s.Encode())
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("Decode(Encode(s)) = %+v, %v; want %+v", got, err, s)
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back ClusterSettings
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("JSON round trip = %+v, %v; want %+v", back, err, s)
	}
	for _, d := range [][]string{{}, {"local-storage", "metrics-server"}} {
		withChoices := s
		withChoices.FlannelBackend, withChoices.Disabled, withChoices.EmbeddedRegistry = "vxlan", d, d
		if got, err := DecodeClusterSettings(withChoices.Encode()); err != nil || !reflect.DeepEqual(got, withChoices) {
			t.Errorf("with backend and disabled %v: Decode(Encode(s)) = %+v, %v", d, got, err)
		}
	}
	extra := s.Encode()
	extra["from-a-newer-server"] = "x"
	if got, err := DecodeClusterSettings(extra); err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("Decode with an unknown key = %+v, %v; want it ignored", got, err)
	}
}

func TestDecodeErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(map[string]string)
		want   []string
	}{
		{"cluster-cidr missing", func(m map[string]string) { delete(m, "cluster-cidr") }, []string{"cluster-cidr is missing"}},
		{"service-cidr not a CIDR", func(m map[string]string) { m["service-cidr"] = "10.43.0.0" }, []string{"service-cidr: ", "10.43.0.0"}},
		{"cluster-dns not an address", func(m map[string]string) { m["cluster-dns"] = "dns" }, []string{"cluster-dns: ", `"dns"`}},
		{"cluster-domain empty", func(m map[string]string) { m["cluster-domain"] = "" }, []string{"cluster-domain is missing"}},
		{"client CA missing", func(m map[string]string) { delete(m, "client-ca.crt") }, []string{"client-ca.crt is missing"}},
		{"client CA not PEM", func(m map[string]string) { m["client-ca.crt"] = "MIIC" }, []string{"client-ca.crt: "}},
		{"all of them", func(m map[string]string) { clear(m) }, []string{"cluster-cidr is missing", "service-cidr is missing",
			"cluster-dns is missing", "cluster-domain is missing", "client-ca.crt is missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := testSettings(t).Encode()
			tc.change(data)
			_, err := DecodeClusterSettings(data)
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Decode = %v, want an error saying %q", err, want)
				}
			}
			var s ClusterSettings
			raw, _ := json.Marshal(data)
			if err := json.Unmarshal(raw, &s); err == nil {
				t.Error("UnmarshalJSON accepted what Decode refuses")
			}
		})
	}
}

// A server's settings are its flags' and the client CA of its identity.
func TestIdentitySettings(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.ServerConfig(t, dir, nil)
	id, err := Init(cfg, datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := id.Settings(cfg)
	if s.ClusterCIDR != cfg.ClusterCIDR || s.ServiceCIDR != cfg.ServiceCIDR || s.ClusterDNS != cfg.ClusterDNS ||
		s.ClusterDomain != cfg.ClusterDomain || string(s.ClientCA) != string(pki.CertPEM(id.CAs.Client.Cert)) {
		t.Errorf("Settings = %+v, want cfg's networks and the client CA", s)
	}
	if _, err := DecodeClusterSettings(s.Encode()); err != nil {
		t.Errorf("a server's own settings do not decode: %v", err)
	}
}

func TestMismatches(t *testing.T) {
	cluster := ClusterSettings{
		ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.43.0.0/16"),
		ClusterDNS: netip.MustParseAddr("10.43.0.10"), ClusterDomain: "cluster.local", ClientCA: []byte("theirs"),
	}
	mine := cluster
	mine.ClientCA = nil
	if m := mine.Mismatches(cluster); len(m) != 0 {
		t.Errorf("equal settings (but the client CA) mismatch: %v", m)
	}
	mine.FlannelBackend, mine.Disabled, mine.EmbeddedRegistry = "none", []string{"metrics-server"}, []string{"*"}
	if m := mine.Mismatches(cluster); len(m) != 0 {
		t.Errorf("a cluster that publishes no backend, addons or registry: mismatches %v", m)
	}
	cluster.FlannelBackend, cluster.Disabled, cluster.EmbeddedRegistry = "vxlan", []string{}, []string{}
	mine.ClusterCIDR, mine.ClusterDomain = netip.MustParsePrefix("10.52.0.0/16"), "lab.local"
	want := []string{"--cluster-cidr: this server 10.52.0.0/16, the cluster 10.42.0.0/16", "--cluster-domain: this server lab.local, the cluster cluster.local",
		"--flannel-backend: this server none, the cluster vxlan", "--disable: this server metrics-server, the cluster none",
		"--embedded-registry (and --embedded-registry-mirror): this server *, the cluster none"}
	if got := mine.Mismatches(cluster); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Mismatches = %q, want %q", got, want)
	}
}
