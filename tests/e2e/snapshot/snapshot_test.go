//go:build e2e

// Package snapshot_test saves etcd snapshots of real clusters and restores
// them: on the same server (twice, with a watch from before the restore
// expired), refusing truncated, damaged and foreign files without touching
// the data, on a fresh machine that holds the cluster's recovery key, on a
// schedule with retention, and on one server of three, whose two others
// learn they were removed and join the restored cluster again.
package snapshot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/tests/harness"
)

// restoredLine is what a server logs once it restored a snapshot.
const restoredLine = "restored from snapshot"

// bump is how far a restore moves etcd's revision on.
const bump = 1_000_000_000

// lean is what every server leaves out: no addon these tests need.
func lean() []string { return []string{"--disable", "coredns,local-storage,metrics-server"} }

// named is a server's usual flags: its node name and lean.
func named(name string) []string { return append([]string{"--node-name", name}, lean()...) }

// secretData is the Secret saved in the snapshot, read back after restores.
func secretData() map[string][]byte {
	return map[string][]byte{"password": []byte("kept-across-restore")}
}

func TestEtcdSnapshots(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	harness.HoldMountpoints(t) // the two subtests below run side by side
	t.Run("one server", oneServer)
	t.Run("three servers", threeServers)
	t.Run("a lost server's replacement", replacedServer)
}

// replacedServer: a server whose disk is lost comes back on a new, empty
// data dir at the same address from a snapshot file and the recovery key,
// and an agent of the old cluster, never restarted, reconnects: its
// kubelet renews its node lease on the restored server and runs a pod made
// after the restore.
func replacedServer(t *testing.T) {
	t.Parallel()
	network := harness.NewNetwork(t)
	srv := harness.NewNode(t, network, 2)
	srv.StartServer(named("server-1")...)
	srv.WaitReadyz(2 * time.Minute)
	agent := harness.NewNode(t, network, 10)
	agent.StageImages(nil)
	agent.StartAgent(srv, srv.JoinToken(), "agent-1")
	srv.WaitNodesReady(srv, 1)
	srv.Kubectl("create", "configmap", "kept", "--from-literal=k=before")
	file := writeFile(t, filepath.Join(srv.Dir, "saved.snapshot.tar"), readFile(t, srv.SaveEtcdSnapshot("")))
	key := writeFile(t, filepath.Join(srv.Dir, "recovery.key"), []byte(srv.RecoveryKey()+"\n"))
	if code, _ := srv.Stop(time.Minute); code != 0 {
		t.Fatalf("server stop: exit %d", code)
	}
	if err := os.Rename(srv.DataDir, srv.DataDir+".lost-disk"); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	srv.StartServer(append(named("server-1"), "--cluster-reset-restore-path", file, "--recovery-key-file", key)...)
	srv.WaitReadyz(2 * time.Minute)
	waitRestored(srv, 0)
	if got := configValue(t, srv, "kept"); got != "before" {
		t.Errorf("ConfigMap kept after the restore on a new disk: k=%q, want before", got)
	}
	srv.WaitFor(2*time.Minute, "agent-1 renewing its node lease on the restored server", func(ctx context.Context) (bool, error) {
		l, err := srv.Client().CoordinationV1().Leases("kube-node-lease").Get(ctx, "agent-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		renewed := l.Spec.RenewTime != nil && l.Spec.RenewTime.After(restored)
		return renewed, fmt.Errorf("last renewed %v", l.Spec.RenewTime)
	})
	srv.Kubectl("apply", "-f", srv.PinnedEcho("after-restore", "agent-1"))
	srv.WaitRunning(2*time.Minute, "app=after-restore", 1)
}

// oneServer shares a server with its node (server-1) and a second,
// independent cluster's server (other-1, snapshots every 5 s, 2 kept)
// across the checks, on one network.
func oneServer(t *testing.T) {
	t.Parallel()
	network := harness.NewNetwork(t)
	s1 := harness.NewNode(t, network, 2)
	s1.StageImages(nil)
	s1.StartServerNode(named("server-1")...)
	other := harness.NewNode(t, network, 3)
	other.StartServer(append(named("other-1"), "--etcd-snapshot-schedule-cron", "*/5 * * * * *", "--etcd-snapshot-retention", "2")...)
	s1.WaitReadyz(2 * time.Minute)
	other.WaitReadyz(2 * time.Minute)
	s1.WaitNodeReady(3 * time.Minute)

	// More on-demand snapshots than the schedule keeps of its own kind.
	onDemand := []string{other.SaveEtcdSnapshot("")}
	for _, name := range []string{"keep-1", "keep-2", "keep-3"} {
		onDemand = append(onDemand, other.SaveEtcdSnapshot(name))
	}
	scheduledBefore := other.CountLogLines("etcd snapshot saved", "kind=scheduled")
	key, otherKey := s1.RecoveryKey(), other.RecoveryKey()
	if key == otherKey {
		t.Fatalf("two clusters have the same recovery key %q", key)
	}

	makeObjects(t, s1)
	file := s1.SaveEtcdSnapshot("")
	var saved harness.EtcdSnapshot
	t.Run("save writes a file that ls lists as ok and verify passes", func(t *testing.T) { saved = checkSaved(t, s1, file) })
	if saved.Path != "" { // everything here restores the file
		t.Run("a restore on the same server brings the saved state back and expires older watches", func(t *testing.T) {
			restoreSame(t, s1, file, saved.Revision)
		})
		if running(s1) {
			t.Run("a second restore from the same file works", func(t *testing.T) { restoreAgain(t, s1, file) })
			t.Run("truncated, damaged and foreign files are refused and nothing changes", func(t *testing.T) {
				checkRefusals(t, s1, file, onDemand[0])
			})
		}
		t.Run("a fresh machine restores with the cluster's recovery key and not with another's", func(t *testing.T) {
			checkFreshMachine(t, file, key, otherKey)
		})
	}
	t.Run("the schedule keeps 2 scheduled snapshots and every on-demand one", func(t *testing.T) {
		checkSchedule(t, other, onDemand, scheduledBefore)
	})
	t.Run("delete removes a snapshot, prune keeps the newest of one kind", func(t *testing.T) {
		checkDeletePrune(t, other, onDemand[1])
	})
}

// running reports whether n's server process runs (a failed restore may
// have left it stopped).
func running(n *harness.Node) bool {
	select {
	case <-n.Exited():
		return false
	default:
		return true
	}
}

// makeObjects writes what the snapshot is to hold: ConfigMap kept (k=before),
// Secret kept-secret and the echo Deployment with its pod running.
func makeObjects(t *testing.T, n *harness.Node) {
	t.Helper()
	n.Kubectl("create", "configmap", "kept", "--from-literal=k=before")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kept-secret"}, Data: secretData()}
	if _, err := n.Client().CoreV1().Secrets("default").Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.Kubectl("apply", "-f", n.EchoDeployment("echo", 1))
	n.WaitRunning(3*time.Minute, "app=echo", 1)
}

// checkSaved: the file is in the default snapshot dir, ls lists it as a
// good on-demand snapshot of server-1 with a revision, and verify passes.
func checkSaved(t *testing.T, n *harness.Node, file string) harness.EtcdSnapshot {
	if dir := filepath.Join(n.DataDir, "server", "db", "snapshots"); filepath.Dir(file) != dir || !strings.HasSuffix(file, ".snapshot.tar") {
		t.Errorf("save wrote %s, want <name>.snapshot.tar in %s", file, dir)
	}
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("the saved file: %v (empty or missing)", err)
	}
	s, ok := find(n.EtcdSnapshots(), file)
	if !ok {
		t.Fatalf("etcd-snapshot ls does not list %s", file)
	}
	m := regexp.MustCompile(`^on-demand-server-1-(\d+)$`).FindStringSubmatch(s.Name)
	if m == nil || s.Kind != "on-demand" || s.Node != "server-1" || s.Status != "ok" || s.Revision <= 0 || s.Size <= 0 {
		t.Errorf("ls row %+v: want on-demand-server-1-<unix seconds>, kind on-demand, node server-1, status ok, a revision and a size", s)
	}
	if m != nil {
		secs, _ := strconv.ParseInt(m[1], 10, 64)
		if d := time.Since(time.Unix(secs, 0)); d < -time.Minute || d > 10*time.Minute {
			t.Errorf("name %s: its time is %s from now", s.Name, d)
		}
	}
	if d := time.Since(s.Created); d < -time.Minute || d > 10*time.Minute {
		t.Errorf("created %s: %s from now", s.Created, d)
	}
	r := n.Exec(time.Minute, harness.Options{}, "etcd-snapshot", "verify", "--data-dir", n.DataDir, file)
	if r.Code != 0 || !strings.Contains(r.Stdout, "ok") {
		t.Errorf("etcd-snapshot verify of a good file: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if table := n.Exec(time.Minute, harness.Options{}, "etcd-snapshot", "ls", "--data-dir", n.DataDir); !strings.Contains(table.Stdout, s.Name) {
		t.Errorf("etcd-snapshot ls (table): exit %d, no row for %s:\n%s%s", table.Code, s.Name, table.Stdout, table.Stderr)
	}
	return s
}

// restoreSame changes the saved state (ConfigMap changed, Secret and
// Deployment deleted, a ConfigMap added), restores the file, and checks the
// saved state is back, the Deployment's pod serves, etcd's revision moved
// on by a billion past the snapshot's with the revisions before compacted,
// and a watch from before is expired.
func restoreSame(t *testing.T, n *harness.Node, file string, snapRevision int64) {
	c := n.Client()
	cm, err := c.CoreV1().ConfigMaps("default").Get(t.Context(), "kept", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["k"] = "after"
	if _, err := c.CoreV1().ConfigMaps("default").Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Secrets("default").Delete(t.Context(), "kept-secret", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.Kubectl("delete", "deployment,service", "echo")
	n.WaitFor(2*time.Minute, "the echo pods gone", func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
		return err == nil && len(pods.Items) == 0, err
	})
	n.Kubectl("create", "configmap", "made-after", "--from-literal=k=after")
	list, err := c.CoreV1().ConfigMaps("default").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv := list.ResourceVersion

	restore(t, n, file)
	if aside := etcdAside(n, "etcd-old-*"); len(aside) != 1 {
		t.Errorf("after a restore the old etcd data is in %v, want one etcd-old-* dir", aside)
	}
	checkSavedState(t, n)
	checkWatchExpired(t, n, rv)
	checkFreshList(t, n, rv, snapRevision)
	checkCompacted(t, n, snapRevision)
	waitServing(t, n, "app=echo")
}

// restoreAgain restores the same file once more over a change: the change
// goes, and a second etcd-old-* dir keeps what was replaced.
func restoreAgain(t *testing.T, n *harness.Node, file string) {
	n.Kubectl("create", "configmap", "between-restores", "--from-literal=k=x")
	restore(t, n, file)
	if aside := etcdAside(n, "etcd-old-*"); len(aside) != 2 {
		t.Errorf("after two restores the old etcd data is in %v, want two etcd-old-* dirs", aside)
	}
	checkGone(t, n, "between-restores")
	if got := configValue(t, n, "kept"); got != "before" {
		t.Errorf("ConfigMap kept after the second restore: k=%q, want before", got)
	}
}

// restore stops server-1 and starts it from file; it waits for the API and
// for the restore in the log.
func restore(t *testing.T, n *harness.Node, file string) {
	t.Helper()
	before := n.CountLogLines(restoredLine)
	stop(t, n)
	n.StartServerNode(append(named("server-1"), "--cluster-reset-restore-path", file)...)
	n.WaitReadyz(3 * time.Minute)
	waitRestored(n, before)
}

// checkSavedState: what makeObjects wrote reads back as it was when saved,
// the Secret decrypted, and made-after (written after the save) is gone.
func checkSavedState(t *testing.T, n *harness.Node) {
	t.Helper()
	if got := configValue(t, n, "kept"); got != "before" {
		t.Errorf("ConfigMap kept: k=%q, want before (as saved)", got)
	}
	s, err := n.Client().CoreV1().Secrets("default").Get(t.Context(), "kept-secret", metav1.GetOptions{})
	if err != nil || !maps.EqualFunc(s.Data, secretData(), bytes.Equal) {
		t.Errorf("Secret kept-secret: %v, data %q; want %q", err, secretDataOf(s), secretData())
	}
	checkGone(t, n, "made-after")
}

func secretDataOf(s *corev1.Secret) map[string][]byte {
	if s == nil {
		return nil
	}
	return s.Data
}

// checkWatchExpired: a watch of ConfigMaps from rv, a resourceVersion of
// before the restore, is refused as expired (410) instead of resuming.
func checkWatchExpired(t *testing.T, n *harness.Node, rv string) {
	t.Helper()
	c := n.Client()
	n.WaitFor(time.Minute, "a watch from resourceVersion "+rv+" refused as expired", func(ctx context.Context) (bool, error) {
		return watchExpired(ctx, c, rv)
	})
}

// watchExpired watches ConfigMaps from rv for up to 10 s: true when the
// watch is refused, or its first event is an error, with 410.
func watchExpired(ctx context.Context, c kubernetes.Interface, rv string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := c.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	if err != nil {
		return expired(err), err
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			return false, errors.New("the watch closed without an event")
		}
		if ev.Type != watch.Error {
			return false, fmt.Errorf("the watch resumed from before the restore: a %s event", ev.Type)
		}
		err := apierrors.FromObject(ev.Object)
		return expired(err), err
	case <-ctx.Done():
		return false, errors.New("the watch resumed silently from before the restore: no error within 10 s")
	}
}

// expired reports a 410: Expired ("too old resource version") or Gone.
func expired(err error) bool {
	var st apierrors.APIStatus
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.As(err, &st) && st.Status().Code == http.StatusGone
}

// checkFreshList: a new list of ConfigMaps shows the saved state at a
// resourceVersion past the old one and a billion past the snapshot's.
func checkFreshList(t *testing.T, n *harness.Node, oldRV string, snapRevision int64) {
	t.Helper()
	list, err := n.Client().CoreV1().ConfigMaps("default").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, cm := range list.Items {
		got[cm.Name] = cm.Data["k"]
	}
	if _, after := got["made-after"]; got["kept"] != "before" || after {
		t.Errorf("a fresh list after the restore: %v; want kept=before and no made-after", got)
	}
	now, err := strconv.ParseInt(list.ResourceVersion, 10, 64)
	old, err2 := strconv.ParseInt(oldRV, 10, 64)
	if err != nil || err2 != nil || now <= old || now < snapRevision+bump {
		t.Errorf("resourceVersion after the restore %s, before it %s, snapshot's revision %d: want past both and at least %d",
			list.ResourceVersion, oldRV, snapRevision, snapRevision+bump)
	}
}

// checkCompacted: etcd itself, read with the apiserver's client
// certificate, refuses a read at the snapshot's revision as compacted.
func checkCompacted(t *testing.T, n *harness.Node, rev int64) {
	t.Helper()
	c := n.LocalEtcd(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "/registry/configmaps/default/kept", clientv3.WithRev(rev)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("etcd read at the snapshot's revision %d after the restore: %v, want %v", rev, err, rpctypes.ErrCompacted)
	}
}

// waitServing waits until the one pod of selector runs and answers on its
// pod IP: a container started after the restore, not the saved status.
func waitServing(t *testing.T, n *harness.Node, selector string) {
	t.Helper()
	c := n.Client()
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: n.NS.DialContext, DisableKeepAlives: true}}
	n.WaitFor(3*time.Minute, "the pod of "+selector+" serving", func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		if len(pods.Items) != 1 {
			return false, fmt.Errorf("%d pods", len(pods.Items))
		}
		p := pods.Items[0]
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			return false, fmt.Errorf("pod %s %s", p.Name, p.Status.Phase)
		}
		return hello(ctx, hc, p)
	})
}

// hello asks pod p's echo server on its pod IP for its greeting.
func hello(ctx context.Context, hc *http.Client, p corev1.Pod) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Status.PodIP+":8080/", nil)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.HasPrefix(string(body), "hello from "+p.Name), fmt.Errorf("pod %s answered %q", p.Name, body)
}

// checkRefusals: with server-1 stopped, a restore from a truncated copy,
// from a copy with one byte flipped, and from other-1's snapshot each
// exits non-zero saying why and leaves etcd's data as it was; a start
// without the flag then works and restores nothing, verify fails the bad
// copies, and ls marks one dropped among the snapshots as damaged.
func checkRefusals(t *testing.T, n *harness.Node, file, foreign string) {
	stop(t, n)
	data := readFile(t, file)
	truncated := writeFile(t, filepath.Join(n.Dir, "truncated.snapshot.tar"), data[:len(data)/2])
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0xff
	damaged := writeFile(t, filepath.Join(n.Dir, "damaged.snapshot.tar"), flipped)
	foreignCopy := writeFile(t, filepath.Join(n.Dir, "other-cluster.snapshot.tar"), readFile(t, foreign))
	etcdDir := filepath.Join(n.DataDir, "server", "db", "etcd")
	for _, tc := range []struct{ name, file, want string }{
		{"truncated", truncated, "is truncated"},
		{"one byte flipped", damaged, "is damaged"},
		{"another cluster's", foreignCopy, "snapshot of another cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, entries := harness.DirState(t, etcdDir), dbEntries(t, n)
			r := n.RunServer(true, append(named("server-1"), "--cluster-reset-restore-path", tc.file)...)
			if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("restore from a %s file: exit %d, want a refusal saying %q:\n%s", tc.name, r.Code, tc.want, r.Stderr)
			}
			if harness.DirState(t, etcdDir) != before {
				t.Errorf("the refused restore changed %s", etcdDir)
			}
			if got := dbEntries(t, n); got != entries {
				t.Errorf("the refused restore changed %s: %s, was %s", filepath.Dir(etcdDir), got, entries)
			}
		})
	}

	restored := n.CountLogLines(restoredLine)
	n.StartServerNode(named("server-1")...)
	n.WaitReadyz(2 * time.Minute)
	if got := configValue(t, n, "kept"); got != "before" {
		t.Errorf("ConfigMap kept after the refusals: k=%q, want before", got)
	}
	if n.CountLogLines(restoredLine) != restored {
		t.Errorf("a start without --cluster-reset-restore-path restored a snapshot:\n%s", n.LogTail(30))
	}
	verify := func(f string) harness.Result {
		return n.Exec(time.Minute, harness.Options{}, "etcd-snapshot", "verify", "--data-dir", n.DataDir, f)
	}
	if r := verify(file); r.Code != 0 {
		t.Errorf("etcd-snapshot verify of the good file: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, f := range []string{truncated, damaged} {
		if r := verify(f); r.Code == 0 || r.Stdout+r.Stderr == "" {
			t.Errorf("etcd-snapshot verify %s: exit %d, want a failure with a message:\n%s%s", filepath.Base(f), r.Code, r.Stdout, r.Stderr)
		}
	}
	dropped := writeFile(t, filepath.Join(filepath.Dir(file), "dropped-server-1-1.snapshot.tar"), data[:len(data)/2])
	if s, ok := find(n.EtcdSnapshots(), dropped); !ok || !strings.HasPrefix(s.Status, "damaged") {
		t.Errorf("a truncated file among the snapshots: ls says %+v (listed: %t), want status damaged: <why>", s, ok)
	}
}

// checkFreshMachine: a node with an empty data dir, on a network of its
// own, refuses to restore server-1's file without a key and with another
// cluster's key (no CA, encryption config or etcd data written); with
// server-1's key in a 0600 file it restores, and serves the saved objects
// from a single etcd member of its own. verify agrees on both keys.
func checkFreshMachine(t *testing.T, file, key, otherKey string) {
	fresh := harness.NewNode(t, harness.NewNetwork(t), 5)
	copied := writeFile(t, filepath.Join(fresh.Dir, "server-1.snapshot.tar"), readFile(t, file))
	right := writeFile(t, filepath.Join(fresh.Dir, "recovery.key"), []byte(key+"\n"))
	wrong := writeFile(t, filepath.Join(fresh.Dir, "other-cluster.key"), []byte(otherKey+"\n"))
	verify := func(keyFile string) harness.Result {
		return fresh.Exec(time.Minute, harness.Options{}, "etcd-snapshot", "verify", "--data-dir", fresh.DataDir, "--recovery-key-file", keyFile, copied)
	}
	if r := verify(right); r.Code != 0 || !strings.Contains(r.Stdout, "ok") {
		t.Errorf("verify with the cluster's key on a fresh machine: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := verify(wrong); r.Code == 0 {
		t.Errorf("verify with another cluster's key passed:\n%s", r.Stdout)
	}
	args := append(named("server-1-new"), "--cluster-reset-restore-path", copied)
	for _, tc := range []struct {
		name string
		key  []string
		want string
	}{
		{"without a recovery key", nil, ""},
		{"with another cluster's recovery key", []string{"--recovery-key-file", wrong}, "recovery key does not open"},
	} {
		r := fresh.RunServer(false, append(args[:len(args):len(args)], tc.key...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("a restore %s on a fresh machine: exit %d, want a refusal saying %q:\n%s", tc.name, r.Code, tc.want, r.Stderr)
		}
		for _, f := range []string{"server/tls/server-ca.key", "server/cred/encryption-config.json", "server/db/etcd"} {
			if _, err := os.Stat(filepath.Join(fresh.DataDir, f)); err == nil {
				t.Errorf("a restore %s on a fresh machine was refused but wrote %s", tc.name, f)
			}
		}
	}
	fresh.StartServer(append(args, "--recovery-key-file", right)...)
	fresh.WaitReadyz(3 * time.Minute)
	waitRestored(fresh, 0)
	checkSavedState(t, fresh)
	checkMembers(t, fresh, "server-1-new")
}

// checkSchedule: at least 4 scheduled snapshots are saved (3 of them after
// the on-demand ones), then ls shows exactly 2 scheduled ones, good, and
// every on-demand one still.
func checkSchedule(t *testing.T, n *harness.Node, onDemand []string, savedBefore int) {
	need := max(4, savedBefore+3)
	n.WaitFor(time.Minute, fmt.Sprintf("%d scheduled snapshots saved", need), func(context.Context) (bool, error) {
		got := n.CountLogLines("etcd snapshot saved", "kind=scheduled")
		return got >= need, fmt.Errorf("%d saved", got)
	})
	var snaps []harness.EtcdSnapshot
	n.WaitFor(30*time.Second, "2 scheduled snapshots kept", func(context.Context) (bool, error) {
		snaps = n.EtcdSnapshots()
		k := ofKind(snaps, "scheduled")
		return len(k) == 2, fmt.Errorf("%d kept: %+v", len(k), k)
	})
	for _, s := range ofKind(snaps, "scheduled") {
		if _, err := os.Stat(s.Path); err != nil || s.Status != "ok" || s.Node != "other-1" || s.Revision <= 0 {
			t.Errorf("scheduled snapshot %+v: %v; want a file, status ok, node other-1, a revision", s, err)
		}
	}
	for _, p := range onDemand {
		if s, ok := find(snaps, p); !ok || s.Kind != "on-demand" || s.Status != "ok" {
			t.Errorf("on-demand snapshot %s after the schedule pruned: %+v (listed: %t), want kept, on-demand, ok", p, s, ok)
		}
	}
}

// checkDeletePrune: delete removes victim's file and row; prune of the
// on-demand kind keeps one of them and leaves the scheduled ones.
func checkDeletePrune(t *testing.T, n *harness.Node, victim string) {
	s, ok := find(n.EtcdSnapshots(), victim)
	if !ok {
		t.Fatalf("%s is not listed", victim)
	}
	if r := n.Exec(time.Minute, harness.Options{}, "etcd-snapshot", "delete", "--data-dir", n.DataDir, s.Name); r.Code != 0 {
		t.Errorf("etcd-snapshot delete %s: exit %d: %s", s.Name, r.Code, r.Stderr)
	}
	if _, err := os.Stat(victim); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("deleted snapshot %s: stat says %v, want it gone", victim, err)
	}
	if _, ok := find(n.EtcdSnapshots(), victim); ok {
		t.Errorf("deleted snapshot %s still listed", s.Name)
	}
	onDemand := len(ofKind(n.EtcdSnapshots(), "on-demand"))
	r := n.Exec(time.Minute, harness.Options{}, "etcd-snapshot", "prune", "--data-dir", n.DataDir, "--kind", "on-demand", "--retention", "1")
	if r.Code != 0 {
		t.Errorf("etcd-snapshot prune: exit %d: %s", r.Code, r.Stderr)
	}
	snaps := n.EtcdSnapshots()
	if got := len(ofKind(snaps, "on-demand")); onDemand < 2 || got != 1 {
		t.Errorf("prune --kind on-demand --retention 1: %d on-demand snapshots left of %d, want 1", got, onDemand)
	}
	// The schedule itself never keeps fewer than its 2.
	if got := len(ofKind(snaps, "scheduled")); got < 2 {
		t.Errorf("prune --kind on-demand left %d scheduled snapshots, want the schedule's 2", got)
	}
}

// threeServers: three servers (no nodes) make one etcd; server-1's
// snapshot is restored on it with all three stopped; the two others, started
// as before, exit 78 as removed with their data aside, and join the
// restored cluster again with new server tokens.
func threeServers(t *testing.T) {
	t.Parallel()
	network := harness.NewNetwork(t)
	names := []string{"server-1", "server-2", "server-3"}
	s1 := harness.NewNode(t, network, 2)
	s1.StartServer(named("server-1")...)
	s1.WaitReadyz(2 * time.Minute)
	servers := map[string]*harness.Node{"server-1": s1}
	for i, name := range names[1:] {
		n := harness.NewNode(t, network, 3+i)
		n.StartServer(append(named(name), "--server", s1.ServerURL(), "--token-file", serverTokenFile(t, s1, n))...)
		servers[name] = n
	}
	for _, name := range names[1:] {
		servers[name].WaitReadyz(3 * time.Minute)
	}
	checkMembers(t, s1, names...)
	s1.Kubectl("create", "configmap", "before-snapshot", "--from-literal=k=kept")
	file := s1.SaveEtcdSnapshot("")
	s1.Kubectl("delete", "configmap", "before-snapshot")
	s1.Kubectl("create", "configmap", "after-snapshot", "--from-literal=k=lost")

	stop(t, s1)
	t.Run("a restore while other members run is refused, nothing changed", func(t *testing.T) {
		before := harness.DirState(t, filepath.Join(s1.DataDir, "server", "db", "etcd"))
		r := s1.RunServer(false, append(named("server-1"), "--cluster-reset-restore-path", file)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "still answer on their peer port") {
			t.Errorf("restore beside running servers: exit %d, want a refusal naming them:\n%s", r.Code, r.Stderr)
		}
		if after := harness.DirState(t, filepath.Join(s1.DataDir, "server", "db", "etcd")); after != before {
			t.Error("a refused restore changed the etcd data")
		}
	})
	stop(t, servers["server-2"])
	servers["server-3"].Kill() // the last of three has no quorum to stop with: lost, as a machine is
	s1.StartServer(append(named("server-1"), "--cluster-reset-restore-path", file)...)
	s1.WaitReadyz(3 * time.Minute)
	waitRestored(s1, 0)
	t.Run("the restored server alone has the snapshot's objects", func(t *testing.T) {
		checkMembers(t, s1, "server-1")
		checkRestored3(t, s1)
	})
	t.Run("the other servers, started as before, exit 78: removed from their cluster, data aside", func(t *testing.T) {
		for _, name := range names[1:] {
			checkRemovedStart(t, servers[name], name)
		}
	})
	t.Run("they join the restored server again with new server tokens as voters", func(t *testing.T) {
		for _, name := range names[1:] {
			n := servers[name]
			n.StartServer(append(named(name), "--server", s1.ServerURL(), "--token-file", serverTokenFile(t, s1, n))...)
		}
		for _, name := range names[1:] {
			servers[name].WaitReadyz(3 * time.Minute)
		}
		checkMembers(t, s1, names...)
		for _, name := range names[1:] {
			checkRestored3(t, servers[name])
		}
	})
}

// checkRestored3: through n, the three-server cluster's ConfigMaps are as
// saved: before-snapshot back, after-snapshot gone.
func checkRestored3(t *testing.T, n *harness.Node) {
	t.Helper()
	if got := configValue(t, n, "before-snapshot"); got != "kept" {
		t.Errorf("ConfigMap before-snapshot: k=%q, want kept", got)
	}
	checkGone(t, n, "after-snapshot")
}

// checkRemovedStart: a start of n as before the restore exits 78 saying
// it was removed and how to join again; its etcd data is moved aside.
func checkRemovedStart(t *testing.T, n *harness.Node, name string) {
	t.Helper()
	r := n.RunServer(false, named(name)...)
	for _, want := range []string{"removed from its cluster", "monokube token create --role server"} {
		if r.Code != 78 || !strings.Contains(r.Stderr, want) {
			t.Errorf("%s started after the restore: exit %d, want 78 saying %q:\n%s", name, r.Code, want, r.Stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "server", "db", "etcd")); err == nil {
		t.Errorf("%s: its etcd data is still in place", name)
	}
	if aside := etcdAside(n, "etcd-*"); len(aside) == 0 {
		t.Errorf("%s: its etcd data is not moved aside (no server/db/etcd-*/member)", name)
	}
}

// serverTokenFile makes a server token on from and writes it to a 0600
// file in to's scratch dir, for --token-file.
func serverTokenFile(t *testing.T, from, to *harness.Node) string {
	t.Helper()
	r := from.Exec(time.Minute, harness.Options{}, "token", "create", "--role", "server")
	if r.Code != 0 {
		t.Fatalf("token create --role server: exit %d: %s", r.Code, r.Stderr)
	}
	return writeFile(t, filepath.Join(to.Dir, "server-token"), []byte(strings.TrimSpace(r.Stdout)+"\n"))
}

// checkMembers: etcd, asked through n, has exactly the named members, all
// healthy voters.
func checkMembers(t *testing.T, n *harness.Node, names ...string) {
	t.Helper()
	n.WaitEtcdVoters(t, 2*time.Minute, names...)
}

// stop stops n with SIGTERM; anything but exit 0 fails the test.
func stop(t *testing.T, n *harness.Node) {
	t.Helper()
	if code, _ := n.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d\n%s", code, n.LogTail(30))
	}
}

// waitRestored waits until n's log says it restored a snapshot more
// often than the before times it had.
func waitRestored(n *harness.Node, before int) {
	n.WaitFor(30*time.Second, "the restore in the log", func(context.Context) (bool, error) {
		return n.CountLogLines(restoredLine) > before, nil
	})
}

// etcdAside lists the etcd data dirs matching pattern in n's server/db
// (each with etcd's member dir inside).
func etcdAside(n *harness.Node, pattern string) []string {
	dirs, _ := filepath.Glob(filepath.Join(n.DataDir, "server", "db", pattern, "member"))
	return dirs
}

// dbEntries names what n's server/db holds.
func dbEntries(t *testing.T, n *harness.Node) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.DataDir, "server", "db"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// configValue is key k of ConfigMap name in default, read through n.
func configValue(t *testing.T, n *harness.Node, name string) string {
	t.Helper()
	cm, err := n.Client().CoreV1().ConfigMaps("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ConfigMap %s: %v", name, err)
	}
	return cm.Data["k"]
}

// checkGone: ConfigMap name does not exist, read through n.
func checkGone(t *testing.T, n *harness.Node, name string) {
	t.Helper()
	if _, err := n.Client().CoreV1().ConfigMaps("default").Get(t.Context(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap %s: %v, want not found", name, err)
	}
}

// find is the ls row of the file at path.
func find(snaps []harness.EtcdSnapshot, path string) (harness.EtcdSnapshot, bool) {
	for _, s := range snaps {
		if s.Path == path {
			return s, true
		}
	}
	return harness.EtcdSnapshot{}, false
}

// ofKind keeps the rows of kind.
func ofKind(snaps []harness.EtcdSnapshot, kind string) []harness.EtcdSnapshot {
	var out []harness.EtcdSnapshot
	for _, s := range snaps {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writeFile writes data to path with mode 0600 and returns path.
func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
