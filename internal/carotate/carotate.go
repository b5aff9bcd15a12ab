// Package carotate carries a CA rotation (`monokube certificate
// rotate-ca`) from the server that runs it to the cluster's other
// servers. The steps themselves are changes of the CA files
// (identity.StartCARotation, SwitchCAs, RetireCAs); after each, the
// running server publishes its CA files, sealed with the Secrets
// encryption key, in a ConfigMap; every server's Sync writes them into its
// own data dir, has its leaves checked against them, and reports the hash
// of what it holds; the step is done when every server reports it.
package carotate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/secretsenc"
)

// Where a rotation's state and the servers' reports live, in
// secretsenc.Namespace.
const (
	StateName  = "monokube-ca-rotation"
	StatusName = "monokube-ca-rotation-status"
)

// StageFinished marks a rotation every server has followed: its files are
// not applied again (a restore may since have brought back an older
// state, and the encryption key that sealed it may be gone).
const StageFinished = "finished"

// How long a retirement waits for client-go, which is how kube-apiserver
// reaches the kubelets and how the controller-manager, the scheduler,
// monokube's controllers, kube-proxy and the kubelets reach the
// apiserver. It reads a changed CA file only when a request comes five
// minutes or more after its last read (k8s.io/client-go/transport,
// caRefreshDuration, fixed), and a client certificate's files every
// CertReload (its CertCallbackRefreshDuration, which monokube sets). The
// switch needs no wait: until the retirement the servers and kubelets
// serve their new certificates with the old CA's certificate of the new
// (identity.ServingChain), which clients that trust only the old verify.
const (
	// CertReload is how often monokube's client-go clients read their
	// client certificates again.
	CertReload = 30 * time.Second
	// TrustSettle is how long after the trust step of a CA of serving
	// certificates (server, kubelet-serving) its old CA is retired at the
	// soonest: every client must trust the new one by then. kube-apiserver's
	// client of the kubelets reads its CA file when a request goes through
	// it, which exec and port-forward connections are not: every server's
	// Sync sends one every pokeEvery while a rotation is under way.
	TrustSettle = 5*time.Minute + 2*pokeEvery
	// pokeEvery is how often a server sends a request through its
	// apiserver's client of the kubelets during a rotation.
	pokeEvery = 30 * time.Second
	// RetireSettle is how long after the switch of the client CA its old
	// CA is retired at the soonest: every component must present the
	// client certificate the new CA signed by then.
	RetireSettle = CertReload + 15*time.Second
)

// Wait is how much longer, at now, the retirement of names on the server
// l must wait for client-go to follow the steps before (TrustSettle from
// the trust step, RetireSettle from the switch), as this server's files
// date them: the old CA's certificate of the new is written at the trust
// step, the new key at the switch.
func Wait(l datadir.Layout, names []string, now time.Time) (time.Duration, error) {
	c := control.NewCreds(l)
	states, err := identity.CAStates(l, names)
	if err != nil {
		return 0, err
	}
	var wait time.Duration
	for _, st := range states {
		if st.Stage == identity.CAStageIdle {
			continue
		}
		at, ok := map[string]struct {
			file   string
			settle time.Duration
		}{
			identity.CAServer:         {identity.CrossCertFile(c.ServerCA), TrustSettle},
			identity.CAKubeletServing: {identity.CrossCertFile(c.KubeletServingCA), TrustSettle},
			identity.CAClient:         {c.ClientCA.Key(), RetireSettle},
		}[st.Name]
		if !ok {
			continue
		}
		fi, err := os.Stat(at.file)
		if err != nil {
			return 0, err
		}
		wait = max(wait, at.settle-now.Sub(fi.ModTime()))
	}
	return wait, nil
}

// sealInfo separates this use of the Secrets encryption key.
const sealInfo = "monokube CA rotation v1"

// state is a rotation step as the ConfigMap holds it.
type state struct {
	stage   string
	hash    string
	files   identity.CAFiles
	version string // the ConfigMap's resourceVersion; "" if there is none
}

// encryptionKeys are the Secrets encryption keys of the server on l,
// which seal the state.
func encryptionKeys(l datadir.Layout) ([]identity.EncryptionKey, error) {
	data, err := os.ReadFile(control.NewCreds(l).EncryptionConfig)
	if err != nil {
		return nil, err
	}
	return identity.ParseEncryptionConfig(data)
}

// readState reads the ConfigMap, opening its files unless it is finished;
// ok is false when there is none.
func readState(ctx context.Context, client kubernetes.Interface, keys []identity.EncryptionKey) (state, bool, error) {
	sealed, ok, err := secretsenc.ReadSealedState(ctx, client, StateName, keys, sealInfo, StageFinished,
		"CA rotation", "monokube certificate rotate-ca")
	st := state{stage: sealed.Stage, hash: sealed.Hash, version: sealed.Version}
	if err != nil || sealed.Payload == nil {
		return st, ok, err
	}
	if err := json.Unmarshal(sealed.Payload, &st.files); err != nil {
		return st, ok, err
	}
	if st.files.Hash() != st.hash {
		err = fmt.Errorf("%s/%s: its files do not match its hash", secretsenc.Namespace, StateName)
	}
	return st, true, err
}

// Step publishes, as step stage of the cluster's rotation, the CA files
// of the server on l as change leaves them, and returns their hash. It
// changes a copy of them, not the server's own: every server, this one
// too, takes the published files through its Sync, so that none ever
// holds files the others are not given. The state is saved over the one
// read: another rotation that saved meanwhile makes it fail.
func Step(ctx context.Context, client kubernetes.Interface, l datadir.Layout, stage string, change func(datadir.Layout) error) (string, error) {
	keys, err := encryptionKeys(l)
	if err != nil {
		return "", err
	}
	files, err := changed(l, change)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(files)
	if err != nil {
		return "", err
	}
	data, err := secretsenc.SealedStateData(stage, files.Hash(), payload, keys[0], sealInfo)
	if err != nil {
		return "", err
	}
	return files.Hash(), save(ctx, client, keys, data)
}

// changed is l's CA files after change, made on a copy in a private
// directory beside them that is removed after.
func changed(l datadir.Layout, change func(datadir.Layout) error) (identity.CAFiles, error) {
	files, err := identity.ReadCAFiles(l)
	if err != nil {
		return nil, err
	}
	// A copy left by a command killed here holds keys: never keep one.
	stale, _ := filepath.Glob(filepath.Join(l.Server(), ".ca-rotation-*")) // the pattern is valid
	for _, dir := range stale {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(l.Server(), ".ca-rotation-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	copyOf := datadir.Layout{Data: tmp, Run: filepath.Join(tmp, "run")}
	if err := identity.WriteCAFiles(copyOf, files); err != nil {
		return nil, err
	}
	if err := change(copyOf); err != nil {
		return nil, err
	}
	return identity.ReadCAFiles(copyOf)
}

// Unfinished is the step of a rotation that was published and not yet
// followed by every server and agent (a command cut short, which running
// it again finishes), or "".
func Unfinished(ctx context.Context, client kubernetes.Interface) (string, error) {
	step, err := secretsenc.SealedStage(ctx, client, StateName)
	if err != nil || step == StageFinished {
		return "", err
	}
	return step, nil
}

// Finish marks the rotation followed by every server.
func Finish(ctx context.Context, client kubernetes.Interface, l datadir.Layout) error {
	keys, err := encryptionKeys(l)
	if err != nil {
		return err
	}
	data, err := secretsenc.SealedStateData(StageFinished, "", nil, keys[0], sealInfo)
	if err != nil {
		return err
	}
	return save(ctx, client, keys, data)
}

// save writes data as the state over the version read now.
func save(ctx context.Context, client kubernetes.Interface, keys []identity.EncryptionKey, data map[string]string) error {
	st, _, err := readState(ctx, client, keys)
	if err != nil && st.version == "" {
		return err
	}
	_, err = secretsenc.SaveState(ctx, client, StateName, st.version, data)
	return err
}

// Agree waits until every server reports hash, at most wait.
func Agree(ctx context.Context, client kubernetes.Interface, servers func(context.Context) ([]string, error), hash, step string, wait time.Duration) error {
	return secretsenc.Agree(ctx, secretsenc.Agreement{Client: client, Status: StatusName, Servers: servers, Wait: wait,
		Want: hash, Stage: step, Command: "`monokube certificate rotate-ca`"})
}

// Sync is a server's part of a rotation: it takes the cluster's CA files
// when they differ from its own, has its leaves checked against them
// (identity.RequestCheck, which the certificate renewal carries out) and
// reports the hash of its files once that is done.
type Sync struct {
	Client kubernetes.Interface
	Layout datadir.Layout
	Node   string // the server's name in reports
	// Checked reports whether no check of the leaves waits.
	Checked func() bool
	// EtcdTrusted is the etcd CA file as this server's etcd member and
	// apiserver read it at start: the CAs they trust until they restart.
	EtcdTrusted []byte
	// Servers are the names of the cluster's servers (its etcd members).
	Servers func(context.Context) ([]string, error)
	Log     *slog.Logger

	reported string
	poked    time.Time
	waitedOn string // the server this one last said it waits for
}

var _ lifecycle.Component = (*Sync)(nil)

// Name implements lifecycle.Component.
func (*Sync) Name() string { return "ca-rotation-sync" }

// syncEvery is how often a server looks at the state: one GET.
const syncEvery = 2 * time.Second

// Run syncs every syncEvery until ctx ends, or until this server must
// restart (a lifecycle.RestartError, which it returns).
func (s *Sync) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var restart error
	secretsenc.RunEvery(ctx, syncEvery, func(ctx context.Context) error {
		err := s.Once(ctx)
		if errors.As(err, new(*lifecycle.RestartError)) {
			restart = err
			cancel()
			return nil
		}
		return err
	}, s.Log)
	return restart
}

// Once takes the cluster's files if they differ from this server's, and
// reports, while a step is published and not finished. When a retirement this server scheduled is due, it publishes
// that step first.
func (s *Sync) Once(ctx context.Context) error {
	if err := s.retireIfDue(ctx); err != nil {
		return err
	}
	keys, err := encryptionKeys(s.Layout)
	if err != nil {
		return err
	}
	st, ok, err := readState(ctx, s.Client, keys)
	if err != nil {
		return err
	}
	if !ok || st.stage == StageFinished { // nothing to take or report: no reading of the CA files every 2 s
		s.poke(ctx)
		return nil
	}
	local, err := identity.ReadCAFiles(s.Layout)
	if err != nil {
		return err
	}
	if st.hash != local.Hash() {
		if err := identity.WriteCAFiles(s.Layout, st.files); err != nil {
			return err
		}
		if _, err := identity.RequestCheck(s.Layout); err != nil {
			return err
		}
		s.Log.Info("took the cluster's CAs; checking this server's certificates against them", "step", st.stage)
		return nil // reported once the check is done
	}
	if !s.Checked() {
		return nil
	}
	if waiting, err := s.restartIfRetired(ctx, st.hash); err != nil || waiting {
		return err // no report before the restart
	}
	s.poke(ctx)
	return s.report(ctx, local.Hash())
}

// restartIfRetired asks for a restart of this server (a
// lifecycle.RestartError) when its etcd member and apiserver still trust
// an etcd CA the cluster retired: they read the CAs they trust only at
// start. The servers restart one at a time, in the order of their names,
// each once every server before it reports hash (which it does after its
// restart), so that etcd keeps its quorum; waiting is whether this one
// waits for its turn.
func (s *Sync) restartIfRetired(ctx context.Context, hash string) (waiting bool, err error) {
	retired, err := identity.EtcdTrustRetired(s.Layout, s.EtcdTrusted)
	if err != nil || !retired {
		return false, err
	}
	names, err := s.Servers(ctx)
	if err != nil {
		return true, fmt.Errorf("list the servers: %w", err)
	}
	reports, err := secretsenc.Reports(ctx, s.Client, StatusName)
	if err != nil {
		return true, err
	}
	slices.Sort(names)
	for _, n := range names {
		if n == s.Node {
			break
		}
		if reports[n].Applied != hash {
			if s.waitedOn != n {
				s.Log.Info("waiting for server "+n+" to restart before this one: etcd must keep its quorum", "step", "retire")
				s.waitedOn = n
			}
			return true, nil
		}
	}
	return true, &lifecycle.RestartError{Reason: "the cluster retired an etcd CA that this server's etcd and apiserver trust until they start again"}
}

// retireIfDue publishes the retirement of the old CAs that `rotate-ca
// --retire-after` scheduled on this server, once its time has come.
func (s *Sync) retireIfDue(ctx context.Context) error {
	names, err := identity.RetireDue(s.Layout, time.Now())
	if err != nil || names == nil {
		return err
	}
	retire := func(copyOf datadir.Layout) error { return identity.RetireCAs(copyOf, names) }
	if _, err := Step(ctx, s.Client, s.Layout, "retire", retire); err != nil {
		return fmt.Errorf("retire the old CAs as scheduled: %w", err)
	}
	s.Log.Info("retiring the old CAs, as scheduled", "cas", names)
	return identity.CancelRetire(s.Layout)
}

// poke sends, while a CA rotation is under way on this server, a request
// through its apiserver to a kubelet every pokeEvery (see TrustSettle);
// a failure is of no consequence and is not reported.
func (s *Sync) poke(ctx context.Context) {
	if time.Since(s.poked) < pokeEvery {
		return
	}
	states, err := identity.CAStates(s.Layout, []string{identity.CAKubeletServing})
	if err != nil || states[0].Stage == identity.CAStageIdle {
		return
	}
	s.poked = time.Now()
	nodes, err := s.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(nodes.Items) == 0 {
		return
	}
	_ = s.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", nodes.Items[0].Name, "proxy", "healthz").Do(ctx).Error()
}

// report writes this server's report when it changed.
func (s *Sync) report(ctx context.Context, hash string) error {
	if hash == s.reported {
		return nil
	}
	r := secretsenc.Report{Applied: hash, Time: time.Now().UTC().Truncate(time.Second)}
	if err := secretsenc.WriteReport(ctx, s.Client, StatusName, s.Node, r); err != nil {
		return err
	}
	s.reported = hash
	return nil
}
