package server

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
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

// Over etcd data, a lost CA, service-account key or encryption key stops
// the start with the way out, and nothing is made anew; without etcd data
// (a first start) they are made.
func TestPrepareRefusesNewKeysOverData(t *testing.T) {
	dir, c, nc := pkiDirs(t)
	l := datadir.Layout{Data: dir, Run: dir + "/run"}
	log := slog.New(slog.DiscardHandler)
	cfg := testutil.ServerConfig(t, dir, func(in *config.ServerInput) { in.WriteKubeconfig = filepath.Join(dir, "kubeconfig.yaml") })
	if err := Prepare(cfg, l, c, nc, log); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(l.Etcd(), "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, lost := range []string{c.ServerCA.Key(), c.ClientCA.Cert(), c.EtcdCA.Key(), c.ServiceKey, c.EncryptionConfig} {
		t.Run(filepath.Base(lost), func(t *testing.T) {
			data, err := os.ReadFile(lost)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(lost); err != nil {
				t.Fatal(err)
			}
			err = Prepare(cfg, l, c, nc, log)
			if err == nil || !strings.Contains(err.Error(), lost+" is missing") || !strings.Contains(err.Error(), "restore") {
				t.Fatalf("Prepare = %v, want a refusal naming %s", err, lost)
			}
			if fsutil.Exists(lost) {
				t.Fatalf("%s was made anew", lost)
			}
			if err := os.WriteFile(lost, data, 0o600); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := Prepare(cfg, l, c, nc, log); err != nil {
		t.Fatalf("Prepare with every key back: %v", err)
	}
}
