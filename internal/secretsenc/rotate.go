package secretsenc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/identity"
)

// Rotation drives a key rotation from one server: `monokube
// secrets-encrypt rotate-keys`. Run again after a failure, it goes on
// from the stage the cluster is in.
type Rotation struct {
	Client kubernetes.Interface
	// File is this server's encryption config: where a first rotation
	// starts from.
	File string
	// Servers names every server of the cluster (etcd's members,
	// stopped ones too): each must apply each stage.
	Servers func(context.Context) ([]string, error)
	// Wait bounds the wait for the servers at each stage.
	Wait time.Duration
	Out  io.Writer // progress, one line per step
	Now  func() time.Time
}

// Run rotates the key: from a finished (or no) rotation it starts a new
// one; from an unfinished one it goes on. It returns when every server
// applied the finished config.
func (r *Rotation) Run(ctx context.Context) error {
	st, err := r.current(ctx)
	if err != nil {
		return err
	}
	if st.Stage == "" || st.Stage == StageFinished {
		if err := r.agree(ctx, st); err != nil {
			return fmt.Errorf("before a new rotation: %w", err)
		}
		if st, err = r.prepare(ctx, st); err != nil {
			return err
		}
	}
	for st.Stage != StageFinished {
		if st.Stage != StageReencrypt {
			if err := r.agree(ctx, st); err != nil {
				return err
			}
		}
		if st, err = r.advance(ctx, st); err != nil {
			return err
		}
	}
	return r.agree(ctx, st)
}

// current is the cluster's state, or, before any rotation, this server's
// config as a finished one.
func (r *Rotation) current(ctx context.Context) (State, error) {
	local, err := os.ReadFile(r.File)
	if err != nil {
		return State{}, err
	}
	keys, err := identity.ParseEncryptionConfig(local)
	if err != nil {
		return State{}, err
	}
	cm, err := r.Client.CoreV1().ConfigMaps(Namespace).Get(ctx, StateName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return State{Config: local, SealedWith: keys[0].Name}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read %s/%s: %w", Namespace, StateName, err)
	}
	st, err := decode(cm.Data, keys)
	st.version = cm.ResourceVersion
	return st, err
}

// prepare makes a new key and adds it, for reading, to st's config.
func (r *Rotation) prepare(ctx context.Context, st State) (State, error) {
	keys, err := identity.ParseEncryptionConfig(st.Config)
	if err != nil {
		return st, err
	}
	if !bytes.Equal(identity.RenderEncryptionConfig(keys), st.Config) {
		return st, fmt.Errorf("%s is not the config monokube writes (edited by hand?): rotate-keys would drop what it does not know; "+
			"put back monokube's form, with secretbox keys only, on every server first", r.File)
	}
	name := fmt.Sprintf("monokube-%d", r.Now().Unix())
	if _, taken := Find(keys, name); taken {
		return st, fmt.Errorf("a key called %s exists already: try again in a second", name)
	}
	fresh, err := identity.NewEncryptionKey(name)
	if err != nil {
		return st, err
	}
	next := State{Stage: StagePrepare, Config: identity.RenderEncryptionConfig([]identity.EncryptionKey{keys[0], fresh}), SealedWith: keys[0].Name, version: st.version}
	return r.save(ctx, next, keys[0])
}

// advance moves st to its next stage.
func (r *Rotation) advance(ctx context.Context, st State) (State, error) {
	keys, err := identity.ParseEncryptionConfig(st.Config)
	if err != nil {
		return st, err
	}
	sealer, _ := Find(keys, st.SealedWith) // st opened with it
	switch st.Stage {
	case StagePrepare: // [old, new] → [new, old]
		if len(keys) != 2 {
			return st, fmt.Errorf("stage %s with %d keys: expected the old and the new one", st.Stage, len(keys))
		}
		next := State{Stage: StageRotate, Config: identity.RenderEncryptionConfig([]identity.EncryptionKey{keys[1], keys[0]}), SealedWith: st.SealedWith, version: st.version}
		return r.save(ctx, next, sealer)
	case StageRotate:
		next := State{Stage: StageReencrypt, Config: st.Config, SealedWith: st.SealedWith, version: st.version}
		return r.save(ctx, next, sealer)
	case StageReencrypt:
		if err := r.reencrypt(ctx); err != nil {
			return st, err
		}
		// Sealed with the new key: every server holds it since prepare.
		next := State{Stage: StageFinished, Config: identity.RenderEncryptionConfig(keys[:1]), SealedWith: keys[0].Name, version: st.version}
		return r.save(ctx, next, keys[0])
	}
	return st, fmt.Errorf("unknown rotation stage %q in %s/%s", st.Stage, Namespace, StateName)
}

// save writes st, sealed with key, over the version st was read at, and
// returns st at its new version.
func (r *Rotation) save(ctx context.Context, st State, key identity.EncryptionKey) (State, error) {
	data, err := encode(st, key)
	if err != nil {
		return st, err
	}
	if st.version, err = SaveState(ctx, r.Client, StateName, st.version, data); err != nil {
		return st, fmt.Errorf("save stage %s: %w", st.Stage, err)
	}
	keys, _ := identity.ParseEncryptionConfig(st.Config)
	fmt.Fprintf(r.Out, "stage %s: keys %s (the first encrypts)\n", st.Stage, strings.Join(names(keys), ", "))
	return st, nil
}

// SaveState writes data as the state ConfigMap name, over resourceVersion
// version (made if version is ""), and returns its new version. Another
// rotation that saved in between makes it fail, so that two commands run
// at once never lose a key the servers already use.
func SaveState(ctx context.Context, client kubernetes.Interface, name, version string, data map[string]string) (string, error) {
	cm := NewConfigMap(name, data)
	cms := client.CoreV1().ConfigMaps(Namespace)
	var err error
	if version == "" {
		cm, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	} else {
		cm.ResourceVersion = version
		cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	switch {
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		return "", fmt.Errorf("%s/%s changed meanwhile: another rotation runs; let it finish, then run this again", Namespace, name)
	case err != nil:
		return "", fmt.Errorf("%s/%s: %w", Namespace, name, err)
	}
	return cm.ResourceVersion, nil
}

// agreePoll is how often agree reads the servers' reports.
const agreePoll = 200 * time.Millisecond

// agree waits until every server's apiserver applied st's config.
func (r *Rotation) agree(ctx context.Context, st State) error {
	return Agree(ctx, Agreement{Client: r.Client, Status: StatusName, Servers: r.Servers, Wait: r.Wait,
		Want: Hash(st.Config), Stage: stageName(st), Command: "rotate-keys"})
}

// stageName names st's stage in messages.
func stageName(st State) string {
	if st.Stage == "" {
		return "current"
	}
	return string(st.Stage)
}

// Agreement is what Agree waits for: every server reporting Want.
type Agreement struct {
	Client  kubernetes.Interface
	Status  string // the status ConfigMap
	Servers func(context.Context) ([]string, error)
	Wait    time.Duration
	Want    string
	Stage   string // for messages
	Command string // the command to run again, for messages
}

// Agree waits until every server of a reports a.Want, at most a.Wait.
func Agree(ctx context.Context, a Agreement) error {
	ctx, cancel := context.WithTimeout(ctx, a.Wait)
	defer cancel()
	servers, err := a.Servers(ctx)
	if err != nil {
		return fmt.Errorf("list the servers: %w", err)
	}
	for {
		lagging, err := a.lagging(ctx, servers)
		if err == nil && len(lagging) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("waiting for the servers to apply stage %s: %w", a.Stage, err)
			}
			return fmt.Errorf("servers %s have not applied stage %s within %s: start them (or remove a lost one with "+
				"`monokube etcd remove NAME`), then run %s again: it goes on from this stage", strings.Join(lagging, ", "), a.Stage, a.Wait, a.Command)
		case <-time.After(agreePoll):
		}
	}
}

// lagging names the servers whose report is not a.Want.
func (a Agreement) lagging(ctx context.Context, servers []string) ([]string, error) {
	reports, err := Reports(ctx, a.Client, a.Status)
	if err != nil {
		return nil, err
	}
	want := a.Want
	var out []string
	for _, s := range servers {
		if reports[s].Applied != want {
			out = append(out, s)
		}
	}
	return out, nil
}

// Reports are the servers' reports in the status ConfigMap status, by name.
func Reports(ctx context.Context, client kubernetes.Interface, status string) (map[string]Report, error) {
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, status, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return map[string]Report{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", Namespace, status, err)
	}
	out := map[string]Report{}
	for name, v := range cm.Data {
		var rep Report
		if err := json.Unmarshal([]byte(v), &rep); err != nil {
			return nil, fmt.Errorf("%s/%s, server %s: %w", Namespace, status, name, err)
		}
		out[name] = rep
	}
	return out, nil
}

// reencrypt writes every Secret again, unchanged: the apiserver stores it
// with the key that now encrypts (an update of data read with another
// key is never skipped as a no-op).
func (r *Rotation) reencrypt(ctx context.Context) error {
	secrets := r.Client.CoreV1().Secrets(metav1.NamespaceAll)
	start, n := r.Now(), 0
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := secrets.List(ctx, opts)
		if err != nil {
			return fmt.Errorf("list Secrets: %w", err)
		}
		for i := range list.Items {
			if err := rewrite(ctx, r.Client, &list.Items[i]); err != nil {
				return err
			}
			n++
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	fmt.Fprintf(r.Out, "re-encrypted %d Secrets in %s\n", n, r.Now().Sub(start).Round(time.Millisecond))
	return nil
}

// rewrite updates s as it is; one changed or deleted since it was listed
// was written with the new key already.
func rewrite(ctx context.Context, client kubernetes.Interface, s *corev1.Secret) error {
	_, err := client.CoreV1().Secrets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
	if err == nil || apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("re-encrypt Secret %s/%s: %w", s.Namespace, s.Name, err)
}

// Status is `secrets-encrypt status`: the stage, the config every server
// should run and what each one runs.
type Status struct {
	Stage   Stage             `json:"stage"`
	Keys    []string          `json:"keys"` // of the desired config
	Hash    string            `json:"hash"`
	Servers map[string]Report `json:"servers"`
	Agree   bool              `json:"agree"` // every server applied Hash
}

// ReadStatus reads the state with this server's file and the reports of
// servers.
func ReadStatus(ctx context.Context, client kubernetes.Interface, file string, servers []string) (Status, error) {
	r := Rotation{Client: client, File: file}
	st, err := r.current(ctx)
	if err != nil {
		return Status{}, err
	}
	keys, err := identity.ParseEncryptionConfig(st.Config)
	if err != nil {
		return Status{}, err
	}
	reports, err := Reports(ctx, client, StatusName)
	if err != nil {
		return Status{}, err
	}
	out := Status{Stage: st.Stage, Keys: names(keys), Hash: Hash(st.Config), Servers: map[string]Report{}, Agree: true}
	if out.Stage == "" {
		out.Stage = "none (never rotated)"
	}
	for _, s := range servers {
		out.Servers[s] = reports[s]
		out.Agree = out.Agree && reports[s].Applied == out.Hash
	}
	return out, nil
}

// NewConfigMap is a ConfigMap of monokube's in Namespace.
func NewConfigMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "monokube"}}, Data: data}
}
