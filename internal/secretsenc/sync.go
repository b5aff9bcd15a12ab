package secretsenc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/lifecycle"
)

// syncEvery is how often a server looks at the cluster's state: one GET.
const syncEvery = 2 * time.Second

// Report is what a server says of itself in the status ConfigMap.
type Report struct {
	// Applied is the hash of the config its apiserver applied.
	Applied string    `json:"applied"`
	Keys    []string  `json:"keys"` // the names of its file's keys, the encrypting one first
	Time    time.Time `json:"time"`
}

// Sync is a server's part of a rotation: it writes the cluster's desired
// config into the server's file (the apiserver reloads it) and reports
// what the apiserver applied.
type Sync struct {
	Client kubernetes.Interface
	File   string // the server's encryption config
	Node   string // the server's name in reports
	// Applied is the hash of the config the apiserver runs with.
	Applied func() (string, error)
	Log     *slog.Logger

	reported Report
}

var _ lifecycle.Component = (*Sync)(nil)

// Name implements lifecycle.Component.
func (*Sync) Name() string { return "secrets-encryption-sync" }

// Run syncs until ctx ends.
func (s *Sync) Run(ctx context.Context) error {
	RunEvery(ctx, syncEvery, s.Once, s.Log)
	return nil
}

// RunEvery runs once every period until ctx ends: a server's part of a
// rotation. A failure is logged as a warning once, until it changes or
// once succeeds, and tried again.
func RunEvery(ctx context.Context, every time.Duration, once func(context.Context) error, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	warned := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := once(ctx)
		switch {
		case err == nil:
			warned = ""
		case ctx.Err() == nil && err.Error() != warned:
			warned = err.Error()
			log.Warn("sync failed; trying again", "err", err)
		}
	}
}

// Once applies the cluster's config, if there is one, and reports.
func (s *Sync) Once(ctx context.Context) error {
	local, err := os.ReadFile(s.File)
	if err != nil {
		return err
	}
	keys, err := identity.ParseEncryptionConfig(local)
	if err != nil {
		return fmt.Errorf("%s: %w", s.File, err)
	}
	cm, err := s.Client.CoreV1().ConfigMaps(Namespace).Get(ctx, StateName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	default:
		st, err := decode(cm.Data, keys)
		if err != nil {
			return err
		}
		if !bytes.Equal(st.Config, local) {
			if keys, err = identity.ParseEncryptionConfig(st.Config); err != nil {
				return fmt.Errorf("the cluster's encryption config (stage %s): %w", st.Stage, err)
			}
			if err := fsutil.WriteFile(s.File, st.Config, 0o600); err != nil {
				return err
			}
			s.Log.Info("wrote the cluster's encryption config; kube-apiserver reloads it", "stage", st.Stage, "keys", names(keys))
		}
	}
	return s.report(ctx, keys)
}

// report writes this server's Report when it changed.
func (s *Sync) report(ctx context.Context, keys []identity.EncryptionKey) error {
	applied, err := s.Applied()
	if err != nil {
		return err
	}
	r := Report{Applied: applied, Keys: names(keys)}
	if r.Applied == s.reported.Applied && slices.Equal(r.Keys, s.reported.Keys) {
		return nil
	}
	r.Time = time.Now().UTC().Truncate(time.Second)
	if err := WriteReport(ctx, s.Client, StatusName, s.Node, r); err != nil {
		return err
	}
	s.reported = r
	return nil
}

// WriteReport sets node's entry of the status ConfigMap status, making it
// if needed; a merge patch touches no other server's entry.
func WriteReport(ctx context.Context, client kubernetes.Interface, status, node string, r Report) error {
	value, err := json.Marshal(r)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"data": map[string]string{node: string(value)}})
	if err != nil {
		return err
	}
	cms := client.CoreV1().ConfigMaps(Namespace)
	_, err = cms.Patch(ctx, status, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		cm := NewConfigMap(status, map[string]string{node: string(value)})
		if _, err = cms.Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			_, err = cms.Patch(ctx, status, types.MergePatchType, patch, metav1.PatchOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("report to %s/%s: %w", Namespace, status, err)
	}
	return nil
}

// names are the names of keys, in order.
func names(keys []identity.EncryptionKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}
