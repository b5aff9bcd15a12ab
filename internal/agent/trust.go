package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/join"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/pki"
)

// TrustAnnotation is the annotation with which an agent reports, on its
// Node, the CAs it has taken (TrustHash of the cluster's settings): it
// trusts the servers' and clients' CAs the servers publish, and its
// kubelet's certificates come from the CAs that sign now. `monokube
// certificate rotate-ca` waits for every agent to report before each
// step.
const TrustAnnotation = "monokube.io/ca-bundles"

// TrustHash names the CA bundles of s, as agents report them.
func TrustHash(s identity.ClusterSettings) string {
	h := sha256.New()
	for _, b := range [][]byte{s.ServerCA, s.ClientCA, s.KubeletServingCA} {
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// trustEvery is how often an agent reads the published CAs.
const trustEvery = 10 * time.Second

// trustSync keeps an agent's CAs those the servers publish (the cluster
// settings): the bundle it verifies the apiservers with and the one its
// kubelet verifies clients with, which the components read again when
// they change. When a CA that signs the kubelet's certificates has
// changed, it has them re-issued (RotateKubelet) and asks for a restart
// of the node, the only way the kubelet takes them: pods keep running.
//
// It also follows the embedded registry mirror being turned on, off or
// changed on the servers: it records the cluster's choice and restarts
// the node, which then runs the mirror as the cluster says.
type trustSync struct {
	layout datadir.Layout
	creds  node.Creds
	// registries are the node's running EmbeddedRegistry.
	registries []string
	log        *slog.Logger
}

var _ lifecycle.Component = (*trustSync)(nil)

// Name implements lifecycle.Component.
func (*trustSync) Name() string { return "ca-trust" }

// Run syncs every trustEvery until ctx ends, or until the node must
// restart (a lifecycle.RestartError).
func (t *trustSync) Run(ctx context.Context) error {
	tick := time.NewTicker(trustEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		restart, err := t.sync(ctx)
		if err != nil && ctx.Err() == nil {
			t.log.Warn("cannot follow the cluster's CAs; trying again", "err", err)
		}
		if restart != "" {
			return &lifecycle.RestartError{Reason: restart}
		}
	}
}

// sync takes the published settings once; it returns why the node must
// restart, or "".
func (t *trustSync) sync(ctx context.Context) (string, error) {
	if !fsutil.Exists(t.creds.KubeletKubeconfig) {
		return "", nil // still bootstrapping
	}
	client, s, err := t.settings(ctx)
	if err != nil {
		return "", err
	}
	// The CA files first: the registry mirror's hosts name the
	// kubelet-serving one. Servers of a version before the CA bundles
	// publish none.
	published := s.ServerCA != nil && s.KubeletServingCA != nil
	if published {
		for file, want := range map[string][]byte{
			t.layout.AgentTLSFile("server-ca.crt"): s.ServerCA, t.creds.ClientCA: s.ClientCA, t.creds.KubeletServingCA: s.KubeletServingCA,
		} {
			if err := writeChanged(file, want, t.log); err != nil {
				return "", err
			}
		}
	}
	if why, err := t.followRegistry(s); why != "" || err != nil || !published {
		return why, err
	}
	stale, err := t.staleKubeletCerts(s)
	if err != nil || stale {
		if reissued, err := t.reissue(ctx, s, err); !reissued {
			return "", err
		}
		return "the kubelet's certificates were re-issued by the cluster's new CA", nil
	}
	return "", t.report(ctx, client, s)
}

// settings reads the cluster settings the servers publish, as the node.
func (t *trustSync) settings(ctx context.Context) (kubernetes.Interface, identity.ClusterSettings, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", t.creds.KubeletKubeconfig)
	if err != nil {
		return nil, identity.ClusterSettings{}, err
	}
	rc.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, identity.ClusterSettings{}, err
	}
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, join.SettingsConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, identity.ClusterSettings{}, fmt.Errorf("read the cluster settings: %w", err)
	}
	s, err := identity.DecodeClusterSettings(cm.Data)
	if err != nil {
		return nil, identity.ClusterSettings{}, fmt.Errorf("the cluster settings: %w", err)
	}
	return client, s, nil
}

// followRegistry records in cluster.json the cluster's embedded registry
// when it is not the one the node runs, and then says the node must
// restart to run it.
func (t *trustSync) followRegistry(s identity.ClusterSettings) (string, error) {
	if slices.Equal(s.EmbeddedRegistry, t.registries) { // nil (a server from before it) is off too
		return "", nil
	}
	j, err := loadJoined(clusterFile(t.layout))
	if err == nil && j.Server == "" {
		err = fmt.Errorf("%s is missing", clusterFile(t.layout))
	}
	if err != nil {
		return "", fmt.Errorf("follow the cluster's embedded registry mirror: %w", err)
	}
	j.Settings.EmbeddedRegistry = s.EmbeddedRegistry
	if err := fsutil.SaveState(clusterFile(t.layout), j); err != nil {
		return "", err
	}
	t.log.Info("the cluster's embedded registry mirror changed; restarting the node to follow it (pods keep running)",
		"was", t.registries, "now", s.EmbeddedRegistry)
	return "the cluster's embedded registry mirror changed", nil
}

// writeChanged writes data to file if it holds something else.
func writeChanged(file string, data []byte, log *slog.Logger) error {
	if have, err := os.ReadFile(file); err == nil && bytes.Equal(have, data) {
		return nil
	}
	log.Info("took the cluster's CAs", "file", file)
	return fsutil.WriteFile(file, data, 0o644)
}

// staleKubeletCerts reports whether a kubelet certificate was signed by
// another CA than the one that signs its kind now.
func (t *trustSync) staleKubeletCerts(s identity.ClusterSettings) (bool, error) {
	for prefix, bundle := range map[string][]byte{"kubelet-client": s.ClientCA, "kubelet-server": s.KubeletServingCA} {
		store, err := kubeletStore(t.layout, prefix)
		if err != nil {
			return false, err
		}
		cert, err := store.Current()
		if err != nil {
			return false, fmt.Errorf("the kubelet's %s certificate: %w", prefix, err)
		}
		if !pki.SignedByFirst(cert.Leaf, bundle) {
			return true, nil
		}
	}
	return false, nil
}

// reissue has the kubelet's certificates re-issued and reports whether
// the new ones come from the CAs that sign now (then the node restarts to
// use them; else the signers have not read the new CA yet, and the next
// sync tries again).
func (t *trustSync) reissue(ctx context.Context, s identity.ClusterSettings, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	t.log.Info("the cluster's CAs changed: having the kubelet's certificates re-issued")
	files, err := RotateKubelet(ctx, t.layout, identity.ServingChain(s.KubeletServingCA))
	if err != nil {
		return false, err
	}
	stale, err := t.staleKubeletCerts(s)
	if err != nil {
		return false, err
	}
	if stale {
		return false, fmt.Errorf("the re-issued certificates %v are not from the new CA yet", files)
	}
	t.log.Info("re-issued the kubelet's certificates; restarting the node for the kubelet to use them (pods keep running)", "files", files)
	return true, nil
}

// report annotates this node with the CAs it has taken, once.
func (t *trustSync) report(ctx context.Context, client kubernetes.Interface, s identity.ClusterSettings) error {
	store, err := kubeletStore(t.layout, "kubelet-client")
	if err != nil {
		return err
	}
	cert, err := store.Current()
	if err != nil {
		return err
	}
	name, ok := strings.CutPrefix(cert.Leaf.Subject.CommonName, "system:node:")
	if !ok {
		return fmt.Errorf("the kubelet's client certificate is for %q, not a node", cert.Leaf.Subject.CommonName)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	want := TrustHash(s)
	if n.Annotations[TrustAnnotation] == want {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{TrustAnnotation: want}}})
	if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("report the CAs taken on node %s: %w", name, err)
	}
	t.log.Info("reported the cluster's CAs taken", "node", name, "hash", want)
	return nil
}
