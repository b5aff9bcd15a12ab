package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/lifecycle"
)

// FieldManager owns every field monokube applies.
const FieldManager = "monokube"

// Ref names one applied object.
type Ref struct {
	Group     string `json:"group"`
	Version   string `json:"version"`
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// fileState is what was applied from one file.
type fileState struct {
	Hash    string `json:"hash"`
	Refs    []Ref  `json:"refs"`
	Problem string `json:"problem,omitempty"` // the last error, reported once per content
}

// Controller applies the manifests directory.
type Controller struct {
	dir                    string
	stateFile              string
	client                 dynamic.Interface
	events                 kubernetes.Interface
	mapper                 *restmapper.DeferredDiscoveryRESTMapper
	log                    *slog.Logger
	interval               time.Duration
	state                  map[string]fileState
	*lifecycle.ReadySignal // set after the first pass over the directory
}

// New returns the controller for dir, remembering what it applied in
// stateFile, talking to the apiserver as rc.
func New(dir, stateFile string, rc *rest.Config, log *slog.Logger) (*Controller, error) {
	client, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("deploy client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("deploy discovery client: %w", err)
	}
	events, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("deploy events client: %w", err)
	}
	state := map[string]fileState{} // a damaged state only costs re-applying
	fsutil.LoadState(stateFile, &state)
	return &Controller{dir: dir, stateFile: stateFile, client: client, events: events,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)),
		log:    log, interval: 5 * time.Second, state: state, ReadySignal: lifecycle.NewReadySignal()}, nil
}

var _ lifecycle.Component = (*Controller)(nil)

// Name implements lifecycle.Component.
func (*Controller) Name() string { return "manifests" }

// Run syncs the directory now and then every interval until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create manifests directory: %w", err)
	}
	for {
		c.Sync(ctx)
		c.MarkReady()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.interval):
		}
	}
}

// Sync applies new and changed files and deletes the objects of removed
// ones. Problems are logged; nothing here stops the controller.
func (c *Controller) Sync(ctx context.Context) {
	files, skipped, err := c.scan()
	if err != nil {
		c.log.Error("cannot read the manifests directory", "dir", c.dir, "err", err)
		return
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		c.syncFile(ctx, name, files[name])
	}
	for name, st := range c.state {
		if _, ok := files[name]; ok || skipped[name] {
			continue
		}
		if err := c.deleteRefs(ctx, st.Refs); err != nil {
			c.log.Error("cannot delete the objects of a removed manifest; will retry", "file", name, "err", err)
			continue
		}
		c.log.Info("deleted the objects of a removed manifest", "file", name, "objects", len(st.Refs))
		delete(c.state, name)
	}
	c.save()
}

// scan reads the directory: manifest contents by file name, and the names
// to leave alone: those a .skip file marks, and those whose entry is there
// but cannot be read (EACCES, EIO, a dangling symlink): such a file is not
// gone, and deleting its objects (for monokube-join.yaml: cluster-info and
// the nodes' RBAC) would be the wrong answer to a transient error.
func (c *Controller) scan() (map[string][]byte, map[string]bool, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, nil, err
	}
	files, skipped := map[string][]byte{}, map[string]bool{}
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".skip"); ok {
			skipped[name] = true
		}
	}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || skipped[e.Name()] || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(c.dir, e.Name()))
		if err != nil {
			c.log.Error("cannot read manifest; its objects stay as they are", "file", e.Name(), "err", err)
			skipped[e.Name()] = true
			continue
		}
		files[e.Name()] = data
	}
	return files, skipped, nil
}

// syncFile applies one file if its content changed since the last success,
// and prunes objects that left it.
func (c *Controller) syncFile(ctx context.Context, name string, data []byte) {
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	old := c.state[name]
	if old.Hash == hash && old.Problem == "" {
		return
	}
	refs, err := c.apply(ctx, data)
	if err != nil {
		msg := err.Error()
		if old.Hash != hash || old.Problem != msg {
			c.log.Error("manifest not applied; fix the file", "file", name, "err", err)
			c.event(ctx, name, msg)
		}
		c.state[name] = fileState{Hash: hash, Refs: old.Refs, Problem: msg}
		return
	}
	if err := c.deleteRefs(ctx, gone(old.Refs, refs)); err != nil {
		c.log.Warn("cannot delete objects removed from a manifest", "file", name, "err", err)
	}
	c.log.Info("applied manifest", "file", name, "objects", len(refs))
	c.state[name] = fileState{Hash: hash, Refs: refs}
}

// EventReason marks the Warning events of files that cannot be applied.
const EventReason = "ManifestNotApplied"

// event records a bad file as a Warning event about the kube-system
// namespace object; events of cluster-scoped objects live in the default
// namespace, so a plain `kubectl get events` shows it. Best effort: the log
// has it too.
func (c *Controller) event(ctx context.Context, file, msg string) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "monokube-manifests.", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: metav1.NamespaceSystem},
		Reason:         EventReason,
		Message:        fmt.Sprintf("%s: %s", file, msg),
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "monokube"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := c.events.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.log.Warn("cannot record an event for a bad manifest", "file", file, "err", err)
	}
}

// apply server-side-applies every object of a file; the first failure
// stops the file (the next pass retries it).
func (c *Controller) apply(ctx context.Context, data []byte) ([]Ref, error) {
	objs, err := Parse(data)
	if err != nil {
		return nil, err
	}
	refs := make([]Ref, 0, len(objs))
	for _, obj := range objs {
		ref, err := c.applyObject(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

func (c *Controller) applyObject(ctx context.Context, obj *unstructured.Unstructured) (Ref, error) {
	gvk := obj.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		c.mapper.Reset() // a CRD may have just been created
		m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return Ref{}, fmt.Errorf("unknown kind %s: %w", gvk, err)
	}
	ref := Ref{Group: m.Resource.Group, Version: m.Resource.Version, Resource: m.Resource.Resource, Name: obj.GetName()}
	res := c.client.Resource(m.Resource)
	var ri dynamic.ResourceInterface = res
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(metav1.NamespaceDefault)
		}
		ref.Namespace = obj.GetNamespace()
		ri = res.Namespace(ref.Namespace)
	}
	_, err = ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return ref, err
}

// deleteRefs deletes objects; ones already gone are fine.
func (c *Controller) deleteRefs(ctx context.Context, refs []Ref) error {
	var errs []error
	for _, r := range refs {
		gvr := schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
		var ri dynamic.ResourceInterface = c.client.Resource(gvr)
		if r.Namespace != "" {
			ri = c.client.Resource(gvr).Namespace(r.Namespace)
		}
		prop := metav1.DeletePropagationBackground
		err := ri.Delete(ctx, r.Name, metav1.DeleteOptions{PropagationPolicy: &prop})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("%s %s: %w", r.Resource, r.Name, err))
		}
	}
	return errors.Join(errs...)
}

// gone lists the refs of before that are not in after.
func gone(before, after []Ref) []Ref {
	var out []Ref
	for _, r := range before {
		if !slices.Contains(after, r) {
			out = append(out, r)
		}
	}
	return out
}

func (c *Controller) save() {
	if err := fsutil.SaveState(c.stateFile, c.state); err != nil {
		c.log.Error("cannot save what the manifests controller applied", "file", c.stateFile, "err", err)
	}
}
