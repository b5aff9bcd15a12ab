package identity

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
)

// A CA is rotated in three steps, each a change of its files that every
// component follows by itself (they read CA files as bundles, and again
// when they change):
//
//  1. StartCARotation: a new CA is made (or imported) and trusted beside
//     the old one, which still signs. The certificate file holds
//     [old, new]; the new key waits in <ca>.next.key.
//  2. SwitchCAs: the new CA signs. The file holds [new, old] and the key
//     is the new one; every leaf the old CA signed no longer matches its
//     plan and is re-issued at the next renewal (pki.Matches), agents'
//     kubelets get theirs through the CSR signers, which read the files.
//  3. RetireCAs: the old CA is dropped; the file holds [new] alone.
//
// Which step a CA is at is read from its files alone (CARotationStage),
// so a command interrupted anywhere is run again to go on, and a kill
// between the renames of a step is settled at the next read (settleCA).

// CA names, as `monokube certificate rotate-ca --ca` takes them.
const (
	CAServer         = "server"
	CAClient         = "client"
	CARequestHeader  = "request-header"
	CAKubeletServing = "kubelet-serving"
	CAAPIService     = "apiservice"
	CAEtcd           = "etcd"
)

// CAStage is where a CA is in its rotation.
type CAStage string

// The stages, in order.
const (
	CAStageIdle     CAStage = "idle"     // one CA, which signs
	CAStageTrust    CAStage = "trust"    // old signs, new trusted too
	CAStageSwitched CAStage = "switched" // new signs, old still trusted
)

// RotatableCAs are the CAs rotate-ca rotates while the cluster runs: all
// six. etcd, and kube-apiserver's client of it, read the etcd CAs they
// trust only at their start: until every server has restarted after the
// retirement (carotate.Sync restarts them one at a time) they verify the
// new CA's certificates through the old CA's certificate of it, which
// every etcd leaf carries from the switch on (chainLeaves).
func RotatableCAs() []string {
	return []string{CAServer, CAClient, CARequestHeader, CAKubeletServing, CAAPIService, CAEtcd}
}

// caFiles names each CA's files.
func caFiles(c control.Creds) map[string]pki.Files {
	return map[string]pki.Files{
		CAServer: c.ServerCA, CAClient: c.ClientCA, CARequestHeader: c.RequestHeaderCA,
		CAKubeletServing: c.KubeletServingCA, CAAPIService: c.APIServiceCA, CAEtcd: c.EtcdCA,
	}
}

// nextKey is where a CA's successor keeps its key during the trust step.
func nextKey(f pki.Files) string { return string(f) + ".next.key" }

// crossCert is where the old CA's certificate of the new CA's key (its
// vouching for it) is kept during a rotation.
func crossCert(f pki.Files) string { return string(f) + ".cross.crt" }

// CrossCertFile is crossCert, for those that date a rotation's trust
// step by it.
func CrossCertFile(f pki.Files) string { return crossCert(f) }

// JoinCABundle is the server CA bundle that joining nodes are given
// (cluster-info): PublishedBundle of the server CA, whose certificate of
// the new CA by the old lets a join token that pins the old CA trust the
// new (join.Token.TrustedCAs).
func JoinCABundle(c control.Creds) ([]byte, error) { return PublishedBundle(c.ServerCA) }

// PublishedBundle is the CA file of f and, while it holds two CAs, the old
// CA's certificate of the new one, as the servers publish it to nodes.
func PublishedBundle(f pki.Files) ([]byte, error) {
	data, err := os.ReadFile(f.Cert())
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Cert(), err)
	}
	if len(certs) == 1 {
		return data, nil
	}
	cross, err := os.ReadFile(crossCert(f))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return append(data, cross...), nil
}

// CheckCANames refuses names that rotate-ca cannot rotate, saying why.
func CheckCANames(names []string) error {
	for _, n := range names {
		if !slices.Contains(RotatableCAs(), n) {
			return fmt.Errorf("no CA %q: give some of %s", n, strings.Join(RotatableCAs(), ", "))
		}
	}
	return nil
}

// CAState is one CA's rotation as its files tell it.
type CAState struct {
	Name    string
	Stage   CAStage
	Signer  *x509.Certificate   // the CA that signs now
	Trusted []*x509.Certificate // every CA trusted, the signer first
}

// CAStates reads the rotation stage of each of names on l.
func CAStates(l datadir.Layout, names []string) ([]CAState, error) {
	c := control.NewCreds(l)
	unlock, err := lockPKI(c)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []CAState
	for _, n := range names {
		st, err := caState(caFiles(c)[n])
		if err != nil {
			return nil, err
		}
		st.Name = n
		out = append(out, st)
	}
	return out, nil
}

// caState settles f and reads its stage.
func caState(f pki.Files) (CAState, error) {
	if err := settleCA(f); err != nil {
		return CAState{}, err
	}
	data, err := os.ReadFile(f.Cert())
	if err != nil {
		return CAState{}, err
	}
	certs, err := pki.ParseBundle(data)
	if err != nil {
		return CAState{}, fmt.Errorf("%s: %w", f.Cert(), err)
	}
	st := CAState{Stage: CAStageIdle, Signer: certs[0], Trusted: certs}
	switch {
	case fsutil.Exists(nextKey(f)):
		st.Stage = CAStageTrust
	case len(certs) > 1:
		st.Stage = CAStageSwitched
	}
	return st, nil
}

// settleCA finishes a step that a kill interrupted between its renames,
// so that the CA's key and the first certificate of its file are one
// pair again; a consistent CA is left as it is.
func settleCA(f pki.Files) error {
	if !fsutil.Exists(nextKey(f)) {
		return nil
	}
	certPEM, err := os.ReadFile(f.Cert())
	if err != nil {
		return err
	}
	certs, err := pki.ParseBundle(certPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Cert(), err)
	}
	key, errKey := os.ReadFile(f.Key())
	next, errNext := os.ReadFile(nextKey(f))
	if err := errors.Join(errKey, errNext); err != nil {
		return err
	}
	pairs := func(keyPEM []byte, i int) bool {
		if i >= len(certs) {
			return false
		}
		_, err := pki.Parse(pki.CertPEM(certs[i]), keyPEM, f)
		return err == nil
	}
	switch {
	case len(certs) == 2 && pairs(key, 0) && pairs(next, 1): // the trust step, whole
		return nil
	case pairs(key, 0) && pairs(next, 0): // switched; only the spare key is left
		return os.Remove(nextKey(f))
	case len(certs) == 2 && pairs(key, 1) && pairs(next, 1): // switched the key, not yet the file
		if err := fsutil.WriteFile(f.Cert(), pki.BundlePEM(certs[1], certs[0]), 0o644); err != nil {
			return err
		}
		return os.Remove(nextKey(f))
	case len(certs) == 1 && pairs(key, 0): // a start of the trust step that wrote only the key
		return os.Remove(nextKey(f))
	}
	return fmt.Errorf("%s, %s and %s do not fit together: restore %s from a backup (`monokube etcd-snapshot restore` keeps the identity)",
		f.Cert(), f.Key(), nextKey(f), filepath.Dir(f.Cert()))
}

// StartCARotation begins the rotation of each CA of names on l: a new CA
// (imported[name] if given, else made now) is trusted beside the current
// one. A CA already in rotation is left where it is.
func StartCARotation(l datadir.Layout, names []string, imported map[string]*pki.KeyPair, now time.Time) error {
	return eachCA(l, names, func(n string, f pki.Files, st CAState) error {
		if st.Stage != CAStageIdle {
			return nil
		}
		next := imported[n]
		if next == nil {
			var err error
			if next, err = pki.NewCA(fmt.Sprintf("monokube-%s-ca@%d", n, now.Unix()), now); err != nil {
				return err
			}
		}
		keyPEM, err := next.KeyPEM()
		if err != nil {
			return err
		}
		current, err := pki.Load(f)
		if err != nil {
			return err
		}
		cross, err := current.CrossSign(next.Cert, now)
		if err != nil {
			return err
		}
		if err := fsutil.WriteFiles(fsutil.File{Path: nextKey(f), Data: keyPEM, Mode: 0o600},
			fsutil.File{Path: crossCert(f), Data: pki.CertPEM(cross), Mode: 0o644},
			fsutil.File{Path: f.Cert(), Data: pki.BundlePEM(st.Signer, next.Cert), Mode: 0o644}); err != nil {
			return fmt.Errorf("trust the new %s CA: %w", n, err)
		}
		return nil
	})
}

// SwitchCAs makes the new CA of each of names, trusted since
// StartCARotation, the one that signs; the old one stays trusted. A CA
// switched already is left as it is; one not in rotation is an error.
func SwitchCAs(l datadir.Layout, names []string) error {
	return eachCA(l, names, func(n string, f pki.Files, st CAState) error {
		switch st.Stage {
		case CAStageSwitched:
			return nil
		case CAStageIdle:
			return fmt.Errorf("the %s CA is not being rotated: run `monokube certificate rotate-ca` first", n)
		}
		next, err := os.ReadFile(nextKey(f))
		if err != nil {
			return err
		}
		// The key first: settleCA finishes the file if a kill comes between.
		if err := fsutil.WriteFiles(fsutil.File{Path: f.Key(), Data: next, Mode: 0o600},
			fsutil.File{Path: f.Cert(), Data: pki.BundlePEM(st.Trusted[1], st.Trusted[0]), Mode: 0o644}); err != nil {
			return fmt.Errorf("switch to the new %s CA: %w", n, err)
		}
		return os.Remove(nextKey(f))
	})
}

// RetireCAs drops the old CA of each of names that SwitchCAs switched:
// from then on only the new one is trusted. A CA in its trust step is an
// error (its new CA does not sign yet); an idle one is left as it is. A
// scheduled retirement is done with.
func RetireCAs(l datadir.Layout, names []string) error {
	err := eachCA(l, names, func(n string, f pki.Files, st CAState) error {
		switch st.Stage {
		case CAStageIdle:
			return nil
		case CAStageTrust:
			return fmt.Errorf("the new %s CA does not sign yet: run `monokube certificate rotate-ca` to finish the switch first", n)
		}
		if err := fsutil.WriteFile(f.Cert(), pki.CertPEM(st.Signer), 0o644); err != nil {
			return err
		}
		if err := os.Remove(crossCert(f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return CancelRetire(l)
}

// retireSchedule is when the server retires the old CAs of a rotation by
// itself (`rotate-ca --retire-after`).
type retireSchedule struct {
	After time.Time `json:"after"`
	CAs   []string  `json:"cas"`
}

// retireFile is where a retirement is scheduled.
func retireFile(c control.Creds) string {
	return filepath.Join(filepath.Dir(c.ServerCA.Cert()), "ca-retire.json")
}

// ScheduleRetire has the server on l retire the old CAs of names at
// after, as `rotate-ca --retire` would (RetireDue; package carotate
// carries it out).
func ScheduleRetire(l datadir.Layout, names []string, after time.Time) error {
	data, err := json.Marshal(retireSchedule{After: after.UTC(), CAs: names})
	if err != nil {
		return err
	}
	return fsutil.WriteFile(retireFile(control.NewCreds(l)), data, 0o600)
}

// RetireDue returns the CAs of a scheduled retirement whose time has
// come at now; nil when none is due. The retirement is done with once
// RetireCAs has run.
func RetireDue(l datadir.Layout, now time.Time) ([]string, error) {
	file := retireFile(control.NewCreds(l))
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s retireSchedule
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w; run `monokube certificate rotate-ca --retire` instead", file, err)
	}
	if now.Before(s.After) {
		return nil, nil
	}
	if err := CheckCANames(s.CAs); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return s.CAs, nil
}

// CancelRetire drops a scheduled retirement, if there is one.
func CancelRetire(l datadir.Layout) error {
	if err := os.Remove(retireFile(control.NewCreds(l))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// eachCA runs step on the settled state of each CA of names, under the
// PKI lock.
func eachCA(l datadir.Layout, names []string, step func(name string, f pki.Files, st CAState) error) error {
	c := control.NewCreds(l)
	unlock, err := lockPKI(c)
	if err != nil {
		return err
	}
	defer unlock()
	for _, n := range names {
		f := caFiles(c)[n]
		st, err := caState(f)
		if err != nil {
			return err
		}
		if err := step(n, f, st); err != nil {
			return err
		}
	}
	return nil
}

// ImportCAs reads the CAs a user brings for names from dir, each as
// <name>-ca.crt and <name>-ca.key (server-ca.crt, client-ca.key, …); a
// name with neither file is made by monokube. A file alone, a certificate
// that is not a CA's, or a key that is not its own is refused.
func ImportCAs(dir string, names []string, now time.Time) (map[string]*pki.KeyPair, error) {
	out := map[string]*pki.KeyPair{}
	for _, n := range names {
		f := pki.Files(filepath.Join(dir, n+"-ca"))
		certOK, keyOK := fsutil.Exists(f.Cert()), fsutil.Exists(f.Key())
		switch {
		case !certOK && !keyOK:
			continue
		case certOK != keyOK:
			return nil, fmt.Errorf("import the %s CA: %s and %s go together; give both or neither", n, f.Cert(), f.Key())
		}
		kp, err := pki.Load(f)
		if err != nil {
			return nil, fmt.Errorf("import the %s CA: %w", n, err)
		}
		switch {
		case !kp.Cert.IsCA || kp.Cert.KeyUsage&x509.KeyUsageCertSign == 0:
			return nil, fmt.Errorf("import the %s CA: %s is not a CA certificate (it needs CA:TRUE and the certSign usage)", n, f.Cert())
		case now.Before(kp.Cert.NotBefore) || now.After(kp.Cert.NotAfter):
			return nil, fmt.Errorf("import the %s CA: %s is valid from %s to %s, not now", n, f.Cert(),
				kp.Cert.NotBefore.Format(time.RFC3339), kp.Cert.NotAfter.Format(time.RFC3339))
		}
		out[n] = kp
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CA to import in %s: it holds none of %s", dir, strings.Join(caFileNames(names), ", "))
	}
	return out, nil
}

func caFileNames(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, n+"-ca.crt")
	}
	return out
}

// ServingChain is what a serving certificate of the first CA of the
// published bundle (PublishedBundle) is served with, after the switch of
// a rotation: the old CA's certificate of the new one, so that a client
// that has not yet read the new CA (client-go reads a changed CA file
// only when a request comes five minutes after its last read, and
// kube-apiserver's exec and port-forward connections to kubelets make
// none) still verifies it. Nil when there is none to add.
func ServingChain(bundle []byte) []byte {
	certs, err := pki.ParseBundle(bundle)
	if err != nil || len(certs) < 3 {
		return nil
	}
	for _, cross := range certs[2:] {
		if pki.Vouches(cross, certs[1], certs[0]) {
			return pki.CertPEM(cross)
		}
	}
	return nil
}

// CAFiles are the files of the rotatable CAs on a server, keyed by their
// path under the data dir: what every server of a cluster must hold alike
// at each step of a rotation, which the server that runs it hands to the
// others (package carotate).
type CAFiles map[string][]byte

// ReadCAFiles reads the rotatable CAs' files on l: each certificate file
// and key, and the new key and the old CA's certificate of it while there
// are.
func ReadCAFiles(l datadir.Layout) (CAFiles, error) {
	c := control.NewCreds(l)
	unlock, err := lockPKI(c)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := CAFiles{}
	for _, n := range RotatableCAs() {
		f := caFiles(c)[n]
		if err := settleCA(f); err != nil {
			return nil, err
		}
		for i, p := range []string{f.Key(), nextKey(f), crossCert(f), f.Cert()} {
			data, err := os.ReadFile(p)
			switch {
			case err == nil:
				out[rel(l, p)] = data
			case i == 0 || i == 3 || !errors.Is(err, os.ErrNotExist):
				return nil, err
			}
		}
	}
	return out, nil
}

// Hash names the files as a whole.
func (f CAFiles) Hash() string {
	h := sha256.New()
	for _, p := range slices.Sorted(maps.Keys(f)) {
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(f[p]))
		h.Write(f[p])
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

// WriteCAFiles makes the rotatable CAs' files on l those of files, under
// the PKI lock: per CA its keys first, its certificates after, and the
// files it no longer has removed last, so that a kill in between leaves
// what settleCA finishes. Each CA of files must be a certificate with its
// key; anything else is refused before a file is written.
func WriteCAFiles(l datadir.Layout, files CAFiles) error {
	c := control.NewCreds(l)
	for _, n := range RotatableCAs() {
		f := caFiles(c)[n]
		if _, err := pki.Parse(files[rel(l, f.Cert())], files[rel(l, f.Key())], f); err != nil {
			return fmt.Errorf("the cluster's %s CA: %w", n, err)
		}
	}
	unlock, err := lockPKI(c)
	if err != nil {
		return err
	}
	defer unlock()
	for _, n := range RotatableCAs() {
		f := caFiles(c)[n]
		var write []fsutil.File
		var remove []string
		for _, p := range []string{f.Key(), nextKey(f), crossCert(f), f.Cert()} {
			data, ok := files[rel(l, p)]
			mode := os.FileMode(0o600)
			if strings.HasSuffix(p, ".crt") {
				mode = 0o644
			}
			switch have, err := os.ReadFile(p); {
			case !ok:
				remove = append(remove, p)
			case err != nil || !bytes.Equal(have, data):
				write = append(write, fsutil.File{Path: p, Data: data, Mode: mode})
			}
		}
		if err := fsutil.WriteFiles(write...); err != nil {
			return fmt.Errorf("take the cluster's %s CA: %w", n, err)
		}
		for _, p := range remove {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// EtcdTrustRetired reports whether started, the etcd CA file as this
// server's etcd member and kube-apiserver read it when they started,
// holds a CA that the file on l no longer holds: one a rotation retired,
// which they trust until they start again.
func EtcdTrustRetired(l datadir.Layout, started []byte) (bool, error) {
	f := control.NewCreds(l).EtcdCA
	data, err := os.ReadFile(f.Cert())
	if err != nil {
		return false, err
	}
	now, err := pki.ParseBundle(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", f.Cert(), err)
	}
	then, err := pki.ParseBundle(started)
	if err != nil {
		return false, fmt.Errorf("%s as read at start: %w", f.Cert(), err)
	}
	for _, old := range then {
		if !slices.ContainsFunc(now, old.Equal) {
			return true, nil
		}
	}
	return false, nil
}
