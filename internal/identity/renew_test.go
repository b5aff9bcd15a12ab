package identity

import (
	"crypto/ecdsa"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/testutil"
)

// renewServer is a server's identity, made with leaves that live an hour.
func renewServer(t *testing.T) (*config.Server, datadir.Layout, *Identity) {
	t.Helper()
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	cfg := testutil.ServerConfig(t, dir, nil)
	cfg.Certs = config.Certs{Lifetime: pki.ShortLifetime(time.Hour), CheckEvery: time.Minute}
	own := NodeFilesAt(l)
	id, err := Init(cfg, l, &own, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, l, id
}

// Renew re-issues nothing while the leaves are fresh, and every leaf of
// the plan (with a new key) once they are due; the components'
// kubeconfigs name the files, so they need no rewrite to follow.
func TestRenewDueLeaves(t *testing.T) {
	cfg, _, id := renewServer(t)
	log := slog.New(slog.DiscardHandler)
	c := id.Creds
	if issued, err := id.Renew(cfg, time.Now(), log); err != nil || len(issued) != 0 {
		t.Fatalf("fresh leaves: Renew issued %v, %v; want none", issued, err)
	}
	before := load(t, c.APIServerServing)
	issued, err := id.Renew(cfg, time.Now().Add(16*time.Minute), log)
	if err != nil {
		t.Fatal(err)
	}
	want := len(leaves(cfg, c, "")) + len(nodeLeaves(cfg, c, *id.Node))
	if len(issued) != want {
		t.Fatalf("due leaves: Renew issued %d (%v), want every one of the %d", len(issued), issued, want)
	}
	after := load(t, c.APIServerServing)
	if after.Cert.SerialNumber.Cmp(before.Cert.SerialNumber) == 0 || after.Key.Public().(*ecdsa.PublicKey).Equal(before.Key.Public()) {
		t.Error("the renewed serving certificate kept its serial or key")
	}
	if life := after.Cert.NotAfter.Sub(after.Cert.NotBefore); life != time.Hour+time.Hour { // NotBefore is an hour back
		t.Errorf("renewed leaf lives %s, want the configured hour (plus the hour of NotBefore's slack)", life)
	}
	for _, kc := range []string{c.CMKubeconfig, c.SchedulerKubeconfig, id.Node.KubeletKubeconfig, id.Node.KubeProxyKubeconfig} {
		k, err := clientcmd.LoadFromFile(kc)
		if err != nil {
			t.Fatal(err)
		}
		auth := k.AuthInfos[k.Contexts[k.CurrentContext].AuthInfo]
		if len(auth.ClientCertificateData) != 0 || !strings.HasSuffix(auth.ClientCertificate, ".crt") {
			t.Errorf("%s embeds its certificate or names no file (%q): a renewal would not reach its component", kc, auth.ClientCertificate)
		}
	}
}

// A `certificate rotate` request re-issues exactly its services' leaves,
// fresh or not, and is answered and removed.
func TestRenewRotateRequest(t *testing.T) {
	cfg, l, id := renewServer(t)
	log := slog.New(slog.DiscardHandler)
	c := id.Creds
	if _, err := RequestRotate(l, []string{"etcd", "nonsense"}); err == nil || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Fatalf("an unknown service: err %v, want one that lists the services", err)
	}
	req, err := RequestRotate(l, []string{ServiceEtcd, ServiceKubelet})
	if err != nil {
		t.Fatal(err)
	}
	if !id.RotatePending() {
		t.Fatal("a written request is not pending")
	}
	issued, err := id.Renew(cfg, time.Now(), log)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{c.EtcdServer.Cert(), c.EtcdPeer.Cert(), id.Node.KubeletServing.Cert(), id.Node.KubeletClient.Cert()}
	slices.Sort(want)
	slices.Sort(issued)
	if !slices.Equal(issued, want) {
		t.Fatalf("rotate etcd,kubelet issued %v, want %v", issued, want)
	}
	res, ok, err := ReadRotateResult(l, req.ID)
	if err != nil || !ok || res.Error != "" || len(res.Issued) != len(want) {
		t.Fatalf("result %+v, answered %v, %v", res, ok, err)
	}
	if id.RotatePending() || fsutil.Exists(c.RotateRequest) {
		t.Error("the answered request is still there")
	}
	if issued, err := id.Renew(cfg, time.Now(), log); err != nil || len(issued) != 0 {
		t.Errorf("after the request: Renew issued %v, %v; want none", issued, err)
	}
}
