package harness

import (
	"context"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Writes is what a WriteLoop saw.
type Writes struct {
	Acked        []string      // the ConfigMaps whose create was acknowledged
	Gap          time.Duration // the longest run of failed writes
	Slowest      time.Duration // the slowest write that succeeded
	FailingSince time.Time     // zero unless the last writes failed
}

// WriteLoop creates ConfigMaps named prefix<i> in default through c, one
// every 100 ms (each bounded to 2 s), at most count of them and for at
// most bound: a load across a failure that tick brings about (tick(i) runs
// before write i).
func WriteLoop(c kubernetes.Interface, prefix string, count int, bound time.Duration, tick func(i int)) Writes {
	var w Writes
	var failedSince time.Time
	deadline := time.Now().Add(bound)
	for i := 0; i < count && time.Now().Before(deadline); i++ {
		tick(i)
		name := prefix + strconv.Itoa(i)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		began := time.Now()
		_, err := c.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		cancel()
		switch {
		case err == nil:
			w.Slowest = max(w.Slowest, time.Since(began))
			w.Acked = append(w.Acked, name)
			if !failedSince.IsZero() {
				w.Gap = max(w.Gap, time.Since(failedSince))
				failedSince = time.Time{}
			}
		case failedSince.IsZero():
			failedSince = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.FailingSince = failedSince
	return w
}

// Lost counts the acknowledged writes that do not read back through c.
func (w Writes) Lost(tb testing.TB, c kubernetes.Interface) int {
	lost := 0
	for _, name := range w.Acked {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, name, metav1.GetOptions{})
		cancel()
		if err != nil {
			tb.Logf("acknowledged write %s does not read back: %v", name, err)
			lost++
		}
	}
	return lost
}
