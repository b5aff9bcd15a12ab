package flannel

import (
	"net/netip"
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
