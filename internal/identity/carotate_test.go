package identity

import (
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
)

// bundleOf reads the CA certificates in file.
func bundleOf(t *testing.T, file string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func stageOf(t *testing.T, l datadir.Layout, name string) CAState {
	t.Helper()
	st, err := CAStates(l, []string{name})
	if err != nil {
		t.Fatal(err)
	}
	return st[0]
}

// A rotation's three steps, on every rotatable CA: the new CA is trusted
// beside the old one while the old one still signs (no leaf changes);
// after the switch it signs, every leaf of a rotated CA is re-issued by
// it, and the old one is still trusted; after retiring only the new one
// is. The kubelet CA bundle and the join bundle follow each step.
func TestRotateCASteps(t *testing.T) {
	cfg, l, id := renewServer(t)
	log := slog.New(slog.DiscardHandler)
	c := id.Creds
	names := RotatableCAs()
	old := map[string]*x509.Certificate{}
	for _, n := range names {
		old[n] = stageOf(t, l, n).Signer
	}

	if err := StartCARotation(l, names, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		st := stageOf(t, l, n)
		if st.Stage != CAStageTrust || !st.Signer.Equal(old[n]) || len(st.Trusted) != 2 {
			t.Fatalf("%s after the trust step: stage %s, %d trusted, old signs %v", n, st.Stage, len(st.Trusted), st.Signer.Equal(old[n]))
		}
	}
	if issued, err := id.Renew(cfg, time.Now(), log); err != nil || len(issued) != 0 {
		t.Fatalf("trust step: Renew issued %v, %v; want nothing (the old CAs still sign)", issued, err)
	}
	if got := bundleOf(t, c.KubeletCABundle); len(got) != 2 {
		t.Errorf("kubelet CA bundle holds %d CAs in the trust step, want both", len(got))
	}
	join, err := JoinCABundle(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := bundleOf(t, c.ServerCA.Cert()); len(mustParse(t, join)) != 3 || !pki.Vouches(mustParse(t, join)[2], got[0], got[1]) {
		t.Error("the join bundle does not carry the old server CA's certificate of the new one")
	}
	if err := StartCARotation(l, names, nil, time.Now()); err != nil || !stageOf(t, l, CAServer).Signer.Equal(old[CAServer]) {
		t.Errorf("a second start: %v; want the rotation under way left as it is", err)
	}

	if err := SwitchCAs(l, names); err != nil {
		t.Fatal(err)
	}
	issued, err := id.Renew(cfg, time.Now(), log)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(leaves(cfg, c, "")) + len(nodeLeaves(cfg, c, *id.Node)); len(issued) != want {
		t.Errorf("after the switch Renew issued %d leaves, want every one the rotated CAs sign (%d)", len(issued), want)
	}
	for _, n := range names {
		st := stageOf(t, l, n)
		if st.Stage != CAStageSwitched || st.Signer.Equal(old[n]) || !st.Trusted[1].Equal(old[n]) {
			t.Fatalf("%s after the switch: stage %s, new signs %v, old trusted %v", n, st.Stage, !st.Signer.Equal(old[n]), st.Trusted[1].Equal(old[n]))
		}
	}
	if err := load(t, c.APIServerServing).Cert.CheckSignatureFrom(stageOf(t, l, CAServer).Signer); err != nil {
		t.Errorf("the apiserver's certificate after the switch: %v; want it from the new server CA", err)
	}
	if err := load(t, id.Node.KubeletClient).Cert.CheckSignatureFrom(stageOf(t, l, CAClient).Signer); err != nil {
		t.Errorf("the server node's kubelet certificate after the switch: %v; want it from the new client CA", err)
	}
	for _, f := range []pki.Files{c.APIServerServing, id.Node.KubeletServing} {
		served := bundleOf(t, f.Cert())
		if len(served) != 2 || !pki.Vouches(served[1], old[CAServer], stageOf(t, l, CAServer).Signer) && !pki.Vouches(served[1], old[CAKubeletServing], stageOf(t, l, CAKubeletServing).Signer) {
			t.Errorf("%s after the switch: %d certificates; want the leaf and the old CA's certificate of the new", f.Cert(), len(served))
		}
	}
	etcdOld, etcdNew := old[CAEtcd], stageOf(t, l, CAEtcd).Signer
	for _, f := range []pki.Files{c.EtcdServer, c.EtcdPeer, c.EtcdClient} {
		if chain := bundleOf(t, f.Cert()); len(chain) != 2 || !pki.Vouches(chain[1], etcdOld, etcdNew) {
			t.Errorf("%s after the switch: %d certificates; want the leaf and the old etcd CA's certificate of the new "+
				"(etcd verifies with the CAs it read at start)", f.Cert(), len(chain))
		}
	}
	// A server joining now asks etcd with a certificate the old CA's
	// members verify: the new CA's, with the old one's certificate of it.
	b, err := id.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	joinTLS, err := b.EtcdClientTLS(l, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	oldPool := x509.NewCertPool()
	oldPool.AddCert(etcdOld)
	joinCert := joinTLS.Certificates[0]
	inter := x509.NewCertPool()
	for _, raw := range joinCert.Certificate[1:] {
		cert, _ := x509.ParseCertificate(raw)
		inter.AddCert(cert)
	}
	if _, err := joinCert.Leaf.Verify(x509.VerifyOptions{Roots: oldPool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("a joining server's etcd client certificate after the switch, verified with the old etcd CA: %v", err)
	}
	started, err := os.ReadFile(c.EtcdCA.Cert()) // as a server started now reads it
	if err != nil {
		t.Fatal(err)
	}
	if retired, err := EtcdTrustRetired(l, pki.CertPEM(etcdOld)); err != nil || retired {
		t.Errorf("EtcdTrustRetired after the switch = %v, %v; want false: the old etcd CA is still trusted", retired, err)
	}
	if got := bundleOf(t, c.ClientSigner); len(got) != 1 || !got[0].Equal(stageOf(t, l, CAClient).Signer) {
		t.Error("the controller-manager's client signer file is not the new client CA alone")
	}
	if got := bundleOf(t, id.Node.ClientCA); len(got) != 2 {
		t.Errorf("the server node's copy of the client CA holds %d CAs, want both", len(got))
	}

	if err := RetireCAs(l, names); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if st := stageOf(t, l, n); st.Stage != CAStageIdle || len(st.Trusted) != 1 || st.Signer.Equal(old[n]) {
			t.Errorf("%s after retiring: stage %s, %d trusted; want the new CA alone", n, st.Stage, len(st.Trusted))
		}
	}
	if _, err := id.Renew(cfg, time.Now(), log); err != nil {
		t.Fatal(err)
	}
	if served := bundleOf(t, c.APIServerServing.Cert()); len(served) != 1 {
		t.Errorf("the apiserver's certificate file after retiring holds %d certificates, want the leaf alone", len(served))
	}
	if chain := bundleOf(t, c.EtcdPeer.Cert()); len(chain) != 2 {
		t.Errorf("etcd's peer certificate after retiring: %d certificates; want the chain kept for members not yet restarted", len(chain))
	}
	for _, trusted := range [][]byte{pki.CertPEM(etcdOld), started} {
		if retired, err := EtcdTrustRetired(l, trusted); err != nil || !retired {
			t.Errorf("EtcdTrustRetired after retiring = %v, %v; want true: a restart drops the old etcd CA", retired, err)
		}
	}
	if retired, err := EtcdTrustRetired(l, pki.CertPEM(etcdNew)); err != nil || retired {
		t.Errorf("EtcdTrustRetired of the new etcd CA alone = %v, %v; want false", retired, err)
	}
	if join, err := JoinCABundle(c); err != nil || len(mustParse(t, join)) != 1 {
		t.Errorf("join bundle after retiring: %d certificates, %v; want the new CA alone", len(mustParse(t, join)), err)
	}
	if issued, err := id.Renew(cfg, time.Now(), log); err != nil || len(issued) != 0 {
		t.Errorf("after retiring, again: Renew issued %v, %v; want nothing", issued, err)
	}
	if _, err := Load(l); err != nil {
		t.Errorf("Load after a rotation: %v", err)
	}
}

func mustParse(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	certs, err := pki.ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// A kill between the two renames of the switch (the key written, the
// certificate file not yet) is settled at the next read into the
// switched CA, and Init starts on it.
func TestRotateCASettlesAnInterruptedSwitch(t *testing.T) {
	cfg, l, id := renewServer(t)
	if err := StartCARotation(l, []string{CAClient}, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	f := id.Creds.ClientCA
	next, err := os.ReadFile(nextKey(f))
	if err != nil {
		t.Fatal(err)
	}
	if err := fsutil.WriteFile(f.Key(), next, 0o600); err != nil { // the switch's first rename, alone
		t.Fatal(err)
	}
	if _, err := Init(cfg, l, id.Node, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("Init after a switch cut short: %v", err)
	}
	st := stageOf(t, l, CAClient)
	if st.Stage != CAStageSwitched || fsutil.Exists(nextKey(f)) {
		t.Errorf("after settling: stage %s, spare key left %v; want switched", st.Stage, fsutil.Exists(nextKey(f)))
	}
	if _, err := pki.Load(f); err != nil {
		t.Errorf("the client CA after settling: %v", err)
	}
	if err := RetireCAs(l, []string{CAServer}); err != nil {
		t.Errorf("retiring a CA not in rotation: %v; want nothing done", err)
	}
	if err := SwitchCAs(l, []string{CAServer}); err == nil || !strings.Contains(err.Error(), "rotate-ca") {
		t.Errorf("switching a CA not in rotation: %v; want a refusal saying what to run", err)
	}
}

// A user's own CA is imported in place of a new one; a certificate that
// is no CA's, a lone file and a key that is not the certificate's are
// refused, and so is a CA name that is none.
func TestImportCAs(t *testing.T) {
	_, l, _ := renewServer(t)
	dir := t.TempDir()
	mine, err := pki.NewCA("my-own-server-ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Write(pki.Files(filepath.Join(dir, "server-ca")), mine); err != nil {
		t.Fatal(err)
	}
	got, err := ImportCAs(dir, RotatableCAs(), time.Now())
	if err != nil || len(got) != 1 || got[CAServer] == nil {
		t.Fatalf("ImportCAs = %v, %v; want the server CA alone", got, err)
	}
	if err := StartCARotation(l, []string{CAServer}, got, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st := stageOf(t, l, CAServer); !st.Trusted[1].Equal(mine.Cert) {
		t.Error("the imported CA is not the one trusted beside the old")
	}

	leaf, err := mine.Sign(pki.Spec{CommonName: "not-a-ca", Usages: pki.ServerUsage}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Write(pki.Files(filepath.Join(dir, "client-ca")), leaf); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportCAs(dir, []string{CAClient}, time.Now()); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("a leaf as a CA: %v; want a refusal", err)
	}
	if err := os.Remove(filepath.Join(dir, "client-ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportCAs(dir, []string{CAClient}, time.Now()); err == nil || !strings.Contains(err.Error(), "both or neither") {
		t.Errorf("a certificate without its key: %v; want a refusal", err)
	}
	other, _ := pki.NewCA("other", time.Now())
	keyPEM, _ := other.KeyPEM()
	if err := os.WriteFile(filepath.Join(dir, "client-ca.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportCAs(dir, []string{CAClient}, time.Now()); err == nil {
		t.Error("a key that is not the certificate's was imported")
	}
	if err := CheckCANames([]string{"etc"}); err == nil || !strings.Contains(err.Error(), CAEtcd) {
		t.Errorf("--ca etc: %v; want a refusal naming the CAs", err)
	}
}

// A scheduled retirement is due once its time has come, not before, and
// is done with when the CAs are retired.
func TestRetireDue(t *testing.T) {
	_, l, _ := renewServer(t)
	names := []string{CAServer}
	if err := StartCARotation(l, names, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := SwitchCAs(l, names); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour)
	if err := ScheduleRetire(l, names, at); err != nil {
		t.Fatal(err)
	}
	if due, err := RetireDue(l, at.Add(-time.Second)); err != nil || due != nil {
		t.Fatalf("before its time: due %v, %v; want nothing", due, err)
	}
	due, err := RetireDue(l, at)
	if err != nil || len(due) != 1 || due[0] != CAServer {
		t.Fatalf("at its time: due %v, %v; want the server CA", due, err)
	}
	if err := RetireCAs(l, due); err != nil {
		t.Fatal(err)
	}
	if st := stageOf(t, l, CAServer); st.Stage != CAStageIdle || len(st.Trusted) != 1 {
		t.Errorf("after the retirement: stage %s, %d trusted", st.Stage, len(st.Trusted))
	}
	if due, err := RetireDue(l, at.Add(time.Hour)); err != nil || due != nil {
		t.Errorf("after the retirement: due %v, %v; want the schedule done with", due, err)
	}
}
