package identity

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/testutil"
)

func TestEncryptionConfig(t *testing.T) {
	data := RenderEncryptionConfig([]EncryptionKey{{Name: "monokube-1", Secret: "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzIQ=="}})
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

// initFiles is what Init writes on an empty data dir for a server with a
// node of its own, before the admin group is bound, with each file's
// mode. The paths are those of every monokube version so far: a change
// here strands existing clusters.
func initFiles() map[string]fs.FileMode {
	files := map[string]fs.FileMode{
		"server/tls/kubelet-ca-bundle.crt": 0o644, "server/tls/client-ca-signer.crt": 0o644, "server/tls/kubelet-serving-ca-signer.crt": 0o644,
		"server/tls/service.key": 0o600, "server/tls/service.pub": 0o644,
		"server/cred/super-admin.kubeconfig": 0o600, "server/cred/controller.kubeconfig": 0o600,
		"server/cred/scheduler.kubeconfig": 0o600, "server/cred/encryption-config.json": 0o600, "server/cred/recovery-key": 0o600,
		"server/cred/authentication-config.yaml": 0o600, "server/tls/.lock": 0o600,
		"agent/tls/client-ca.crt":      0o644,
		"agent/etc/kubelet.kubeconfig": 0o600, "agent/etc/kube-proxy.kubeconfig": 0o600,
	}
	pairs := []string{
		"server/tls/server-ca", "server/tls/client-ca", "server/tls/request-header-ca", "server/tls/kubelet-serving-ca",
		"server/tls/apiservice-ca", "server/tls/serving-metrics-server", "server/tls/serving-kube-apiserver",
		"server/tls/serving-kube-controller-manager", "server/tls/serving-kube-scheduler", "server/tls/client-admin",
		"server/tls/client-super-admin", "server/tls/client-controller", "server/tls/client-scheduler",
		"server/tls/client-kube-apiserver", "server/tls/client-auth-proxy", "server/tls/client-csr-approver",
		"server/tls/client-join-token", "server/tls/client-nodehosts", "server/tls/client-root-ca-publisher", "server/tls/client-flannel-peer",
		"server/tls/etcd/server-ca", "server/tls/etcd/server-client", "server/tls/etcd/peer-server-client",
		"server/tls/etcd/client",
		"agent/tls/serving-kubelet", "agent/tls/client-kubelet", "agent/tls/client-kube-proxy",
	}
	for _, p := range pairs {
		files[p+".crt"], files[p+".key"] = 0o644, 0o600
	}
	for _, d := range []string{"server", "server/tls", "server/tls/etcd", "server/cred", "agent", "agent/tls", "agent/etc"} {
		files[d] = fs.ModeDir | 0o700
	}
	return files
}

// tree lists every file and directory under dir with its mode.
func tree(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = fi.Mode().Type() | fi.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInitCreatesEverything(t *testing.T) {
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	cfg := testutil.ServerConfig(t, dir, func(in *config.ServerInput) { in.WriteKubeconfig = filepath.Join(dir, "kubeconfig.yaml") })
	own := testNode(l)
	id, err := Init(cfg, l, &own, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got, want := tree(t, dir), initFiles()
	for f, mode := range want {
		if got[f] != mode {
			t.Errorf("%s: mode %v, want %v", f, got[f], mode)
		}
	}
	for f := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("Init wrote %s, which is not in the plan", f)
		}
	}
	if id.CAs.Server == nil || id.CAs.Client == nil || id.CAs.RequestHeader == nil || id.CAs.Etcd == nil ||
		id.CAs.KubeletServing == nil || id.CAs.APIService == nil {
		t.Errorf("Init returned CAs with one missing: %+v", id.CAs)
	}
	if id.Node == nil || *id.Node != own {
		t.Errorf("Init returned node files %+v, want %+v", id.Node, own)
	}
}

// A second Init keeps every key and certificate as it is (not even
// rewritten with the same bytes), and returns the same CAs.
func TestInitAgainKeepsTheIdentity(t *testing.T) {
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	cfg := testutil.ServerConfig(t, dir, nil)
	own := testNode(l)
	log := slog.New(slog.DiscardHandler)
	first, err := Init(cfg, l, &own, log)
	if err != nil {
		t.Fatal(err)
	}
	before := stats(t, dir)
	second, err := Init(cfg, l, &own, log)
	if err != nil {
		t.Fatal(err)
	}
	for f, fi := range stats(t, dir) {
		isKey := strings.HasSuffix(f, ".crt") && f != "server/tls/kubelet-ca-bundle.crt" && f != "agent/tls/client-ca.crt" ||
			strings.HasSuffix(f, ".key") || strings.HasSuffix(f, "encryption-config.json") || strings.HasSuffix(f, ".pub")
		if isKey && !os.SameFile(fi, before[f]) {
			t.Errorf("second Init rewrote %s", f)
		}
	}
	if !first.CAs.Server.Cert.Equal(second.CAs.Server.Cert) || !first.CAs.Client.Cert.Equal(second.CAs.Client.Cert) ||
		!first.CAs.Etcd.Cert.Equal(second.CAs.Etcd.Cert) {
		t.Error("second Init returned other CAs")
	}
	if string(first.ClientCAPEM()) != string(second.ClientCAPEM()) {
		t.Error("second Init returned another client CA")
	}
}

// stats maps each regular file under dir to its FileInfo.
func stats(t *testing.T, dir string) map[string]fs.FileInfo {
	t.Helper()
	out := map[string]fs.FileInfo{}
	for f, mode := range tree(t, dir) {
		if mode.IsRegular() {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			out[f] = fi
		}
	}
	return out
}

// The admin's kubeconfigs appear only once the admin group is bound: at
// that moment (WriteAdminKubeconfigs) and at every later Init.
func TestAdminKubeconfigsAfterBinding(t *testing.T) {
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	cfg := testutil.ServerConfig(t, dir, func(in *config.ServerInput) { in.WriteKubeconfigMode = "0640" })
	id, err := Init(cfg, l, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if fsutil.Exists(id.Creds.AdminKubeconfig) || fsutil.Exists(cfg.WriteKubeconfig) {
		t.Fatal("admin kubeconfig written before the admin group is bound")
	}
	if fsutil.Exists(l.Agent()) {
		t.Error("Init without a node of the server's own wrote the node's files")
	}
	if err := id.WriteAdminKubeconfigs(cfg); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{id.Creds.AdminKubeconfig: 0o600, cfg.WriteKubeconfig: 0o640} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %v", path, fi, err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	cfg := testutil.ServerConfig(t, dir, nil)
	made, err := Init(cfg, l, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	loaded, err := Load(l)
	if err != nil {
		t.Fatal(err)
	}
	if !made.CAs.Server.Cert.Equal(loaded.CAs.Server.Cert) || !made.CAs.APIService.Cert.Equal(loaded.CAs.APIService.Cert) ||
		loaded.Creds != made.Creds || loaded.Node != nil {
		t.Errorf("Load = %+v, want what Init made, without node files", loaded)
	}
	if after := tree(t, dir); len(after) != len(before) {
		t.Errorf("Load wrote files: %d before, %d after", len(before), len(after))
	}
}

// Load refuses an incomplete identity, naming what is missing: without
// etcd data it points to a server start, over etcd data to a backup.
func TestLoadRefusesPartialIdentity(t *testing.T) {
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	if _, err := Load(l); err == nil || !strings.Contains(err.Error(), "no cluster identity") || !strings.Contains(err.Error(), "monokube server") {
		t.Errorf("Load of an empty data dir = %v, want a refusal that says no server made one", err)
	}
	id, err := Init(testutil.ServerConfig(t, dir, nil), l, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lost := id.Creds.RequestHeaderCA.Key()
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(l); err == nil || !strings.Contains(err.Error(), lost+" is missing") || !strings.Contains(err.Error(), "monokube server") {
		t.Errorf("Load without %s = %v, want a refusal naming it", lost, err)
	}
	if err := os.MkdirAll(filepath.Join(l.Etcd(), "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(l); err == nil || !strings.Contains(err.Error(), lost+" is missing") || !strings.Contains(err.Error(), "restore") {
		t.Errorf("Load without %s over etcd data = %v, want a refusal naming it and the backup", lost, err)
	}
}

// Over etcd data, a lost CA, service-account key or encryption key stops
// the start with the way out, and nothing is made anew; the CAs nothing in
// etcd depends on are made again; without etcd data (a first start)
// everything is made.
func TestInitRefusesNewKeysOverData(t *testing.T) {
	dir, c, own := pkiDirs(t)
	l := datadir.Layout{Data: dir, Run: dir + "/run"}
	log := slog.New(slog.DiscardHandler)
	cfg := testutil.ServerConfig(t, dir, func(in *config.ServerInput) { in.WriteKubeconfig = filepath.Join(dir, "kubeconfig.yaml") })
	if _, err := Init(cfg, l, &own, log); err != nil {
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
			_, err = Init(cfg, l, &own, log)
			if err == nil || !strings.Contains(err.Error(), lost+" is missing") || !strings.Contains(err.Error(), "restore") {
				t.Fatalf("Init = %v, want a refusal naming %s", err, lost)
			}
			if fsutil.Exists(lost) {
				t.Fatalf("%s was made anew", lost)
			}
			if err := os.WriteFile(lost, data, 0o600); err != nil {
				t.Fatal(err)
			}
		})
	}
	remade := []string{c.RequestHeaderCA.Key(), c.KubeletServingCA.Key(), c.APIServiceCA.Key()}
	for _, f := range remade {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Init(cfg, l, &own, log); err != nil {
		t.Fatalf("Init with every key etcd's data depends on: %v", err)
	}
	if missing := missingFiles(remade); len(missing) > 0 {
		t.Errorf("Init did not make %v again", missing)
	}
}

func testNode(l datadir.Layout) NodeFiles { return NodeFilesAt(l) }

// Every key Init keeps over etcd data is one Load requires.
func TestIdentityFilesCoverTheKept(t *testing.T) {
	c := control.NewCreds(datadir.Layout{Data: t.TempDir()})
	all := identityFiles(c)
	for _, f := range keptFiles(c) {
		if !slices.Contains(all, f) {
			t.Errorf("%s is kept over etcd data but not part of the identity Load requires", f)
		}
	}
}

// CAs placed in the data dir before the first start (the user's own) are
// kept, and every leaf is issued from them.
func TestInitKeepsUsersCAs(t *testing.T) {
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	c := control.NewCreds(l)
	mine := map[pki.Files]*pki.KeyPair{}
	for _, a := range authorities(c) {
		ca, err := pki.NewCA("my-"+filepath.Base(string(a.files)), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(string(a.files)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := pki.Write(a.files, ca); err != nil {
			t.Fatal(err)
		}
		mine[a.files] = ca
	}
	cfg := testutil.ServerConfig(t, dir, nil)
	own := testNode(l)
	id, err := Init(cfg, l, &own, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !id.CAs.Server.Cert.Equal(mine[c.ServerCA].Cert) || !id.CAs.Etcd.Cert.Equal(mine[c.EtcdCA].Cert) {
		t.Error("Init replaced a CA placed before the first start")
	}
	for _, lf := range append(leaves(cfg, c, ""), nodeLeaves(cfg, c, own)...) {
		if kp := load(t, lf.files); kp.Cert.CheckSignatureFrom(mine[lf.ca].Cert) != nil {
			t.Errorf("%s is not signed by the placed %s", lf.files.Cert(), lf.ca.Cert())
		}
	}
}
