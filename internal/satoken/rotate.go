package satoken

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/keyutil"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/secretsenc"
)

// Where the rotation's state and the servers' reports live, in
// secretsenc.Namespace.
const (
	StateName  = "monokube-service-account-keys"
	StatusName = "monokube-service-account-keys-status"
)

// Stages of a rotation: the new key verifies everywhere; then it signs.
const (
	StagePrepare  = "prepare"
	StageRotate   = "rotate"
	StageFinished = "finished"
)

// sealInfo separates this use of the Secrets encryption key.
const sealInfo = "monokube service-account keys v1"

// Files are the contents of one server's key files; in the state, also
// the key that signs next, until it does.
type Files struct {
	Key  []byte `json:"key"` // service.key
	Pub  []byte `json:"pub"` // service.pub
	Next []byte `json:"next,omitempty"`
}

// Paths are where a server keeps its key files and its Secrets
// encryption config, whose key seals the state.
type Paths struct {
	Key, Pub, EncryptionConfig string
}

// read reads the key files and the Secrets encryption keys.
func (p Paths) read() (Files, []identity.EncryptionKey, error) {
	var f Files
	var err error
	if f.Key, err = os.ReadFile(p.Key); err != nil {
		return f, nil, err
	}
	if f.Pub, err = os.ReadFile(p.Pub); err != nil {
		return f, nil, err
	}
	config, err := os.ReadFile(p.EncryptionConfig)
	if err != nil {
		return f, nil, err
	}
	keys, err := identity.ParseEncryptionConfig(config)
	return f, keys, err
}

// state is the cluster's desired key files and their stage, and the
// ConfigMap's resourceVersion it was read at ("" if there is none).
type state struct {
	stage   string
	files   Files
	hash    string
	version string
}

// readState is the ConfigMap's state, opened with one of keys; ok is
// false before any rotation. A finished state is not opened: every server
// applied its files before it was saved, and the Secrets encryption key
// that sealed it may be gone since.
func readState(ctx context.Context, client kubernetes.Interface, keys []identity.EncryptionKey) (state, bool, error) {
	sealed, ok, err := secretsenc.ReadSealedState(ctx, client, StateName, keys, sealInfo, StageFinished,
		"service-account key rotation", "monokube service-account-key rotate")
	st := state{stage: sealed.Stage, hash: sealed.Hash, version: sealed.Version}
	if err == nil && sealed.Payload != nil {
		err = json.Unmarshal(sealed.Payload, &st.files)
	}
	return st, ok, err
}

// Sync is a server's part of a rotation: it writes the cluster's key
// files and reports what its signer loaded.
type Sync struct {
	Client kubernetes.Interface
	Paths  Paths
	Node   string
	Signer *Signer
	Log    *slog.Logger

	reported secretsenc.Report
}

var _ lifecycle.Component = (*Sync)(nil)

// Name implements lifecycle.Component.
func (*Sync) Name() string { return "service-account-keys-sync" }

// Run syncs every 2 s until ctx ends.
func (s *Sync) Run(ctx context.Context) error {
	secretsenc.RunEvery(ctx, 2*time.Second, s.Once, s.Log)
	return nil
}

// Once writes the cluster's files if they differ from this server's, and
// reports.
func (s *Sync) Once(ctx context.Context) error {
	local, keys, err := s.Paths.read()
	if err != nil {
		return err
	}
	st, ok, err := readState(ctx, s.Client, keys)
	if err != nil {
		return err
	}
	if ok && st.stage != StageFinished && st.hash != Hash(local.Key, local.Pub) {
		if _, err := Parse(st.files.Key, st.files.Pub); err != nil {
			return fmt.Errorf("the cluster's service-account keys (stage %s): %w", st.stage, err)
		}
		// Both at once, the signing key first: at each stage the verifying
		// keys before and after hold both of the signing keys.
		if err := fsutil.WriteFiles(fsutil.File{Path: s.Paths.Key, Data: st.files.Key, Mode: 0o600},
			fsutil.File{Path: s.Paths.Pub, Data: st.files.Pub, Mode: 0o644}); err != nil {
			return err
		}
		s.Log.Info("wrote the cluster's service-account keys", "stage", st.stage)
	}
	return s.report(ctx)
}

// report writes this server's report when what its signer loaded changed.
func (s *Sync) report(ctx context.Context) error {
	applied, err := s.Signer.Loaded()
	if err != nil {
		return err
	}
	set, err := s.Signer.current()
	if err != nil {
		return err
	}
	r := secretsenc.Report{Applied: applied, Keys: ids(set.Verify)}
	if r.Applied == s.reported.Applied {
		return nil
	}
	r.Time = time.Now().UTC().Truncate(time.Second)
	if err := secretsenc.WriteReport(ctx, s.Client, StatusName, s.Node, r); err != nil {
		return err
	}
	s.reported = r
	return nil
}

// ids are the IDs of keys, in order.
func ids(keys []VerifyKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	return out
}

// Rotation drives a key rotation from one server: `monokube
// service-account-key rotate`. Run again after a failure, it goes on from
// the stage the cluster is in.
type Rotation struct {
	Client  kubernetes.Interface
	Paths   Paths
	Servers func(context.Context) ([]string, error)
	// KeepOld is how long the old key verifies after the new one signs.
	KeepOld time.Duration
	Wait    time.Duration
	Out     io.Writer
	Now     func() time.Time
}

// Run rotates: a new key verifies everywhere, then signs everywhere.
func (r *Rotation) Run(ctx context.Context) error {
	local, keys, err := r.Paths.read()
	if err != nil {
		return err
	}
	st, ok, err := readState(ctx, r.Client, keys)
	if err != nil {
		return err
	}
	if !ok || st.stage == StageFinished {
		st = state{files: local, hash: Hash(local.Key, local.Pub), version: st.version}
		if err := r.agree(ctx, st, "current"); err != nil {
			return fmt.Errorf("before a new rotation: %w", err)
		}
		if st, err = r.prepare(st); err != nil {
			return err
		}
		if st, err = r.save(ctx, st, keys[0]); err != nil {
			return err
		}
	}
	if st.stage == StagePrepare {
		if err := r.agree(ctx, st, st.stage); err != nil {
			return err
		}
		if st, err = r.rotate(st); err != nil {
			return err
		}
		if st, err = r.save(ctx, st, keys[0]); err != nil {
			return err
		}
	}
	if err := r.agree(ctx, st, st.stage); err != nil {
		return err
	}
	st.stage = StageFinished
	_, err = r.save(ctx, st, keys[0])
	return err
}

// prepare adds a new key to the verifying ones; the old one still signs.
func (r *Rotation) prepare(st state) (state, error) {
	set, err := Parse(st.files.Key, st.files.Pub)
	if err != nil {
		return st, err
	}
	key, err := pki.NewKey()
	if err != nil {
		return st, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return st, err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return st, err
	}
	verify := append(set.Active(r.Now()), VerifyKey{ID: KeyID(der), DER: der})
	return state{stage: StagePrepare, files: Files{Key: st.files.Key, Pub: RenderPub(verify), Next: keyPEM}, version: st.version}, nil
}

// rotate makes the next key sign; the old one verifies until KeepOld
// has passed.
func (r *Rotation) rotate(st state) (state, error) {
	set, err := Parse(st.files.Key, st.files.Pub)
	if err != nil {
		return st, err
	}
	next, err := Parse(st.files.Next, st.files.Pub)
	if err != nil {
		return st, fmt.Errorf("the prepared key: %w", err)
	}
	verify := []VerifyKey{}
	for _, v := range set.Active(r.Now()) {
		switch v.ID {
		case next.SignerID:
			continue // first, below
		case set.SignerID:
			v.RetireAfter = r.Now().Add(r.KeepOld)
		}
		verify = append(verify, v)
	}
	for _, v := range set.Verify {
		if v.ID == next.SignerID {
			verify = append([]VerifyKey{v}, verify...)
		}
	}
	return state{stage: StageRotate, files: Files{Key: st.files.Next, Pub: RenderPub(verify)}, version: st.version}, nil
}

// save writes st, sealed with the Secrets encryption key key, over the
// version it was read at, and returns it at its new version.
func (r *Rotation) save(ctx context.Context, st state, key identity.EncryptionKey) (state, error) {
	payload, err := json.Marshal(st.files)
	if err != nil {
		return st, err
	}
	st.hash = Hash(st.files.Key, st.files.Pub)
	data, err := secretsenc.SealedStateData(st.stage, st.hash, payload, key, sealInfo)
	if err != nil {
		return st, err
	}
	if st.version, err = secretsenc.SaveState(ctx, r.Client, StateName, st.version, data); err != nil {
		return st, fmt.Errorf("save stage %s: %w", st.stage, err)
	}
	set, err := Parse(st.files.Key, st.files.Pub)
	if err != nil {
		return st, err
	}
	fmt.Fprintf(r.Out, "stage %s: key %s signs; %d keys verify\n", st.stage, set.SignerID, len(set.Active(r.Now())))
	return st, nil
}

// agree waits until every server's signer loaded st's files.
func (r *Rotation) agree(ctx context.Context, st state, stage string) error {
	return secretsenc.Agree(ctx, secretsenc.Agreement{Client: r.Client, Status: StatusName, Servers: r.Servers, Wait: r.Wait,
		Want: Hash(st.files.Key, st.files.Pub), Stage: stage, Command: "service-account-key rotate"})
}

// Status is `service-account-key status`.
type Status struct {
	Stage   string                       `json:"stage"`
	Signing string                       `json:"signing"`
	Verify  []VerifyKey                  `json:"verify"`
	Hash    string                       `json:"hash"`
	Servers map[string]secretsenc.Report `json:"servers"`
	Agree   bool                         `json:"agree"`
}

// ReadStatus reads the cluster's keys with this server's files and the
// reports of servers.
func ReadStatus(ctx context.Context, client kubernetes.Interface, p Paths, servers []string) (Status, error) {
	local, keys, err := p.read()
	if err != nil {
		return Status{}, err
	}
	st, ok, err := readState(ctx, client, keys)
	if err != nil {
		return Status{}, err
	}
	switch {
	case !ok:
		st = state{stage: "none (never rotated)", files: local}
	case st.stage == StageFinished:
		st.files = local
	}
	set, err := Parse(st.files.Key, st.files.Pub)
	if err != nil {
		return Status{}, err
	}
	reports, err := secretsenc.Reports(ctx, client, StatusName)
	if err != nil {
		return Status{}, err
	}
	out := Status{Stage: st.stage, Signing: set.SignerID, Verify: set.Verify, Hash: Hash(st.files.Key, st.files.Pub),
		Servers: map[string]secretsenc.Report{}, Agree: true}
	for _, s := range servers {
		out.Servers[s] = reports[s]
		out.Agree = out.Agree && reports[s].Applied == out.Hash
	}
	return out, nil
}
