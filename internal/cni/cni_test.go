package cni

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/monokube/monokube/internal/testutil"
)

func TestRenderConflist(t *testing.T) {
	got, err := Render(Network{PodCIDR: netip.MustParsePrefix("10.42.3.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, "conflist", got)
	var parsed struct {
		CNIVersion string           `json:"cniVersion"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(got, &parsed); err != nil {
		t.Fatalf("conflist is not JSON: %v", err)
	}
	var types []string
	for _, p := range parsed.Plugins {
		types = append(types, p["type"].(string))
	}
	if len(types) != 3 || types[0] != "bridge" || types[1] != "portmap" || types[2] != "bandwidth" {
		t.Errorf("plugin chain = %v, want bridge, portmap, bandwidth", types)
	}
}

func TestRenderMTU(t *testing.T) {
	got, err := Render(Network{PodCIDR: netip.MustParsePrefix("10.42.3.0/24"), MTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(got, &parsed); err != nil {
		t.Fatal(err)
	}
	if mtu := parsed.Plugins[0]["mtu"]; mtu != float64(1450) {
		t.Errorf("bridge mtu = %v, want 1450", mtu)
	}
}
