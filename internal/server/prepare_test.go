package server

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

	"github.com/monokube/monokube/internal/testutil"
)

func TestEncryptionConfig(t *testing.T) {
	data := EncryptionConfig("c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzIQ==")
	testutil.Golden(t, "encryption-config", data)

	scheme := runtime.NewScheme()
	if err := apiserverv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	obj, _, err := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("encryption config does not decode strictly: %v", err)
	}
	ec := obj.(*apiserverv1.EncryptionConfiguration)
	p := ec.Resources[0].Providers
	if ec.Resources[0].Resources[0] != "secrets" || p[0].Secretbox == nil || p[1].Identity == nil {
		t.Fatalf("want secrets encrypted by secretbox first, identity to read old data: %+v", ec.Resources)
	}
}
