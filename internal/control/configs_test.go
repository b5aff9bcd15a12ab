package control

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

	"github.com/monokube/monokube/internal/testutil"
)

func TestAuthnConfig(t *testing.T) {
	testutil.Golden(t, "authentication-config", AuthnConfig())

	scheme := runtime.NewScheme()
	if err := apiserverv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	obj, _, err := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer().Decode(AuthnConfig(), nil, nil)
	if err != nil {
		t.Fatalf("authentication config does not decode strictly: %v", err)
	}
	ac := obj.(*apiserverv1.AuthenticationConfiguration)
	if ac.Anonymous == nil || !ac.Anonymous.Enabled || len(ac.Anonymous.Conditions) != 4 {
		t.Fatalf("anonymous access should be on for exactly the three health paths and cluster-info: %+v", ac.Anonymous)
	}
	for _, c := range ac.Anonymous.Conditions {
		if c.Path != "/healthz" && c.Path != "/livez" && c.Path != "/readyz" && c.Path != ClusterInfoPath {
			t.Errorf("anonymous access allowed on %q", c.Path)
		}
	}
}
