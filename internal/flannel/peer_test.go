package flannel

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEndpoint(t *testing.T) {
	node := func(podCIDR string, ann map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: ann}, Spec: corev1.NodeSpec{PodCIDR: podCIDR}}
	}
	full := map[string]string{
		"flannel.alpha.coreos.com/public-ip":    "172.31.250.3",
		"flannel.alpha.coreos.com/backend-data": `{"VNI":1,"VtepMAC":"f2:a1:2e:ba:e6:43"}`,
	}
	ep, ok := endpoint(node("10.42.1.0/24", full))
	if !ok || ep.subnet != netip.MustParsePrefix("10.42.1.0/24") || ep.publicIP != netip.MustParseAddr("172.31.250.3") ||
		ep.vtepMAC.String() != "f2:a1:2e:ba:e6:43" {
		t.Errorf("endpoint = %+v, %v", ep, ok)
	}
	for name, n := range map[string]*corev1.Node{
		"no pod CIDR yet":     node("", full),
		"flannel not up yet":  node("10.42.1.0/24", nil),
		"malformed VTEP":      node("10.42.1.0/24", map[string]string{"flannel.alpha.coreos.com/public-ip": "172.31.250.3", "flannel.alpha.coreos.com/backend-data": `{"VtepMAC":"zz"}`}),
		"malformed public IP": node("10.42.1.0/24", map[string]string{"flannel.alpha.coreos.com/public-ip": "x", "flannel.alpha.coreos.com/backend-data": full["flannel.alpha.coreos.com/backend-data"]}),
	} {
		if _, ok := endpoint(n); ok {
			t.Errorf("%s: endpoint accepted", name)
		}
	}
}

// A node that publishes another node's VTEP MAC or public IP gets no
// route, and neither does the node it copied: the forwarding entry is
// keyed by MAC, so either route would let one node take the other's
// traffic. The server's own address is skipped.
func TestEndpointsRefuseSharedClaims(t *testing.T) {
	node := func(name, cidr, ip, mac string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
			"flannel.alpha.coreos.com/public-ip":    ip,
			"flannel.alpha.coreos.com/backend-data": `{"VNI":1,"VtepMAC":"` + mac + `"}`,
		}}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
	}
	self := netip.MustParseAddr("172.31.250.2")
	nodes := []*corev1.Node{
		node("server", "10.42.0.0/24", "172.31.250.2", "f2:00:00:00:00:02"),
		node("honest", "10.42.1.0/24", "172.31.250.3", "f2:00:00:00:00:03"),
		node("copycat", "10.42.2.0/24", "172.31.250.4", "f2:00:00:00:00:03"),
		node("other", "10.42.3.0/24", "172.31.250.5", "f2:00:00:00:00:05"),
		node("sameip", "10.42.4.0/24", "172.31.250.5", "f2:00:00:00:00:06"),
		node("plain", "10.42.5.0/24", "172.31.250.7", "f2:00:00:00:00:07"),
		node("multicast-mac", "10.42.6.0/24", "172.31.250.8", "01:00:5e:00:00:08"),
		node("loopback", "10.42.7.0/24", "127.0.0.1", "f2:00:00:00:00:09"),
	}
	got, refused := endpoints(nodes, self)
	if len(got) != 1 || got[netip.MustParsePrefix("10.42.5.0/24")].node != "plain" {
		t.Errorf("routed to %v, want only plain's subnet", got)
	}
	want := []refusal{
		{nodes: []string{"other", "sameip"}, claim: "ip 172.31.250.5"},
		{nodes: []string{"honest", "copycat"}, claim: "mac f2:00:00:00:00:03"},
	}
	if !reflect.DeepEqual(refused, want) {
		t.Errorf("refused %+v, want %+v", refused, want)
	}
}
