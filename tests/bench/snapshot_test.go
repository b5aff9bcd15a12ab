//go:build e2e

package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/tests/harness"
)

const (
	// snapWrites is how many sequential writes each latency figure times
	// at least (the run with no snapshot takes exactly this many).
	snapWrites = 300
	// fillWorkers is how many ConfigMap creates run at once while filling.
	fillWorkers = 8
	// maxSaves bounds the back-to-back saves that the writes overlap.
	maxSaves = 30
	// filledLabel marks the ConfigMaps the snapshots hold, latencyLabel
	// those of the latency loops (written after the 10,000 snapshot).
	filledLabel, latencyLabel = "bench=snapshot", "bench=latency"
)

// BenchmarkEtcdSnapshot measures etcd snapshots on one server (no agent,
// addons off): `etcd-snapshot save` wall time, file size and etcd revision
// with 1,000 and with 10,000 ConfigMaps of 1 KiB; the p50 and p99 of
// sequential ConfigMap creates with no snapshot and while saves of the
// 10,000 run back to back; and a restore of the 10,000 snapshot, from
// server start to /readyz, after which all 10,000 (and none of the later
// writes) list back.
func BenchmarkEtcdSnapshot(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	args := []string{"--node-name", "server-1", "--disable", "coredns,local-storage,metrics-server"}
	for range b.N {
		n := harness.NewNode(b, harness.NewNetwork(b), 2)
		n.StartServer(args...)
		n.WaitReadyz(2 * time.Minute)
		c := fastClient(b, n)
		for _, ns := range []string{"filled", "latency"} {
			if _, err := c.CoreV1().Namespaces().Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		fill1k := fillConfigMaps(b, c, 0, 1000)
		save1k, snap1k := timedSave(b, n, "bench-1k")
		fill10k := fillConfigMaps(b, c, 1000, 10000)
		save10k, snap10k := timedSave(b, n, "bench-10k")

		idle := writesUntil(c, "idle-", snapWrites, 2*time.Minute, nil, nil)
		if idle.failed > 0 {
			b.Errorf("%d of %d writes with no snapshot failed: %v", idle.failed, len(idle.took)+idle.failed, idle.err)
		}
		during, saves := writesDuringSaves(b, n, c)

		code, stop := n.Stop(30 * time.Second)
		if code != 0 {
			b.Fatalf("exit %d after SIGTERM\n%s", code, n.LogTail(30))
		}
		restoredBefore := n.CountLogLines("restored from snapshot")
		start := time.Now()
		n.StartServer(append(args, "--cluster-reset-restore-path", snap10k.Path)...)
		n.WaitReadyz(3 * time.Minute)
		restore := time.Since(start)
		if n.CountLogLines("restored from snapshot") <= restoredBefore {
			b.Fatalf("/readyz ok but the log says nothing was restored\n%s", n.LogTail(30))
		}
		checkRestored(b, fastClient(b, n))
		n.Stop(30 * time.Second)

		fmt.Printf("  fill: 1,000 ConfigMaps in %s, 9,000 more in %s (%d workers)\n", fill1k.Round(time.Millisecond), fill10k.Round(time.Millisecond), fillWorkers)
		fmt.Printf("  %d saves of the 10,000 ran back to back during the writes, %.2f s each on average\n", len(saves), mean(saves))
		report(b, "save-1k-cm-s", save1k.Seconds())
		report(b, "save-1k-cm-MiB", float64(snap1k.Size)/(1<<20))
		report(b, "save-1k-cm-revision", float64(snap1k.Revision))
		report(b, "save-10k-cm-s", save10k.Seconds())
		report(b, "save-10k-cm-MiB", float64(snap10k.Size)/(1<<20))
		report(b, "save-10k-cm-revision", float64(snap10k.Revision))
		report(b, "restore-10k-readyz-s", restore.Seconds())
		report(b, "writes-idle", float64(len(idle.took)))
		report(b, "write-p50-idle-ms", percentile(idle.took, 50))
		report(b, "write-p99-idle-ms", percentile(idle.took, 99))
		report(b, "writes-during-save", float64(len(during)))
		report(b, "write-p50-during-save-ms", percentile(during, 50))
		report(b, "write-p99-during-save-ms", percentile(during, 99))
		report(b, "sigterm-exit-s", stop.Seconds())
	}
}

// fillConfigMaps creates ConfigMaps cm-<from> … cm-<to-1> of 1 KiB each in
// namespace filled, fillWorkers at a time (each create bounded to 10 s and
// tried at most 3 times, all of them within 5 minutes), and returns how
// long that took; any that could not be made fails the benchmark.
func fillConfigMaps(b *testing.B, c kubernetes.Interface, from, to int) time.Duration {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	payload := strings.Repeat("x", 1024)
	next := atomic.Int64{}
	next.Store(int64(from))
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range fillWorkers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(to) && ctx.Err() == nil; i = next.Add(1) - 1 {
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: "cm-" + strconv.FormatInt(i, 10), Labels: map[string]string{"bench": "snapshot"}},
					Data:       map[string]string{"payload": payload},
				}
				var err error
				for range 3 {
					wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
					_, err = c.CoreV1().ConfigMaps("filled").Create(wctx, cm, metav1.CreateOptions{})
					wcancel()
					if err == nil || apierrors.IsAlreadyExists(err) || ctx.Err() != nil {
						break
					}
				}
				if err != nil && !apierrors.IsAlreadyExists(err) {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if made := min(next.Load(), int64(to)) - int64(from) - failed.Load(); failed.Load() > 0 || made != int64(to-from) {
		b.Fatalf("made %d of %d ConfigMaps in %s (%d failed; first error: %v; %v)", made, to-from, took, failed.Load(), firstErr, ctx.Err())
	}
	return took
}

// timedSave runs `etcd-snapshot save --name name` on the server and
// returns its wall time and the row ls gives the file.
func timedSave(b *testing.B, n *harness.Node, name string) (time.Duration, harness.EtcdSnapshot) {
	start := time.Now()
	path := n.SaveEtcdSnapshot(name)
	took := time.Since(start)
	for _, s := range n.EtcdSnapshots() {
		if s.Path == path {
			if s.Status != "ok" || s.Size <= 0 {
				b.Fatalf("etcd-snapshot ls: %+v, want status ok and a size", s)
			}
			return took, s
		}
	}
	b.Fatalf("etcd-snapshot ls does not list %s", path)
	return 0, harness.EtcdSnapshot{}
}

// writeRun is what a sequential write loop saw: each acknowledged write's
// start and latency, and how many failed.
type writeRun struct {
	began  []time.Time
	took   []float64 // ms
	failed int
	err    error // the first failure
}

// writesUntil creates small ConfigMaps named prefix<i> in namespace latency
// one at a time (each bounded to 10 s), at most count and for at most
// bound, until stop (if not nil) is closed; tick (if not nil) runs before
// each write. It takes no benchmark, so it can run in a goroutine.
func writesUntil(c kubernetes.Interface, prefix string, count int, bound time.Duration, stop <-chan struct{}, tick func()) writeRun {
	var w writeRun
	deadline := time.Now().Add(bound)
	for i := 0; i < count && time.Now().Before(deadline); i++ {
		select {
		case <-stop:
			return w
		default:
		}
		if tick != nil {
			tick()
		}
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: prefix + strconv.Itoa(i), Labels: map[string]string{"bench": "latency"}},
			Data:       map[string]string{"i": strconv.Itoa(i)},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		began := time.Now()
		_, err := c.CoreV1().ConfigMaps("latency").Create(ctx, cm, metav1.CreateOptions{})
		took := time.Since(began)
		cancel()
		if err != nil {
			w.failed++
			if w.err == nil {
				w.err = err
			}
			continue
		}
		w.began = append(w.began, began)
		w.took = append(w.took, float64(took.Microseconds())/1000)
	}
	return w
}

// writesDuringSaves runs sequential writes in a goroutine while saves of
// the server's data run back to back (at most maxSaves, within 3 minutes)
// until at least snapWrites writes began during a save. It returns the
// latencies of the writes that began while a save command ran and each
// save's wall time.
func writesDuringSaves(b *testing.B, n *harness.Node, c kubernetes.Interface) (during []float64, saves []time.Duration) {
	var saving atomic.Bool
	var overlapped atomic.Int64
	stop := make(chan struct{})
	done := make(chan writeRun, 1)
	go func() {
		done <- writesUntil(c, "during-", 100_000, 4*time.Minute, stop, func() {
			if saving.Load() {
				overlapped.Add(1)
			}
		})
	}()
	type span struct{ from, to time.Time }
	var spans []span
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; i < maxSaves && time.Now().Before(deadline) && overlapped.Load() < snapWrites; i++ {
		from := time.Now()
		saving.Store(true)
		n.SaveEtcdSnapshot(fmt.Sprintf("during-%d", i)) // one name each: a file's name holds whole seconds only
		saving.Store(false)
		spans = append(spans, span{from, time.Now()})
		saves = append(saves, spans[i].to.Sub(from))
	}
	close(stop)
	w := <-done
	if w.failed > 0 {
		b.Errorf("%d writes failed while snapshots were saved: %v", w.failed, w.err)
	}
	for i, t := range w.began {
		if slices.ContainsFunc(spans, func(s span) bool { return !t.Before(s.from) && t.Before(s.to) }) {
			during = append(during, w.took[i])
		}
	}
	if len(during) < snapWrites {
		fmt.Printf("  only %d writes began during a save (%d saves within the bounds)\n", len(during), len(saves))
	}
	return during, saves
}

// checkRestored: after the restore, namespace filled lists exactly the
// 10,000 ConfigMaps the snapshot holds and namespace latency none of the
// writes made after it; otherwise the benchmark fails.
func checkRestored(b *testing.B, c kubernetes.Interface) {
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	filled, err := c.CoreV1().ConfigMaps("filled").List(ctx, metav1.ListOptions{LabelSelector: filledLabel})
	if err != nil {
		b.Fatalf("list the restored ConfigMaps: %v", err)
	}
	if len(filled.Items) != 10000 {
		b.Fatalf("after the restore namespace filled lists %d ConfigMaps, want 10000", len(filled.Items))
	}
	later, err := c.CoreV1().ConfigMaps("latency").List(ctx, metav1.ListOptions{LabelSelector: latencyLabel})
	if err != nil {
		b.Fatalf("list the latency ConfigMaps: %v", err)
	}
	if len(later.Items) != 0 {
		b.Fatalf("after the restore namespace latency lists %d ConfigMaps written after the snapshot, want 0", len(later.Items))
	}
}

// percentile is the p-th percentile of ms (sorted in place); 0 when empty.
func percentile(ms []float64, p int) float64 {
	if len(ms) == 0 {
		return 0
	}
	slices.Sort(ms)
	return ms[len(ms)*p/100]
}

// mean is the mean of ds in seconds; 0 when empty.
func mean(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum.Seconds() / float64(len(ds))
}
