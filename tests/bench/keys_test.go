//go:build e2e

package bench

import (
	"context"
	"fmt"
	"path/filepath"
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
	"k8s.io/client-go/rest"

	"github.com/monokube/monokube/tests/harness"
)

// benchSecrets is how many Secrets rotate-keys re-encrypts.
const benchSecrets = 1000

// BenchmarkKeyRotation measures, on one server with its node (addons
// off), the wall time of `certificate rotate` (every leaf, each with a
// new key), of `secrets-encrypt rotate-keys` over 1,000 Secrets of 1 KiB
// and of `service-account-key rotate`, then of `certificate rotate-ca`
// and of `rotate-ca --retire --ca etcd` (the server restarts), and the API
// requests that failed during each and the 10 s after it, with the
// longest run of failures: a loop reads a Secret and writes a
// ConfigMap every 50 ms through a client made before (its admin
// certificate is one the rotation replaces).
func BenchmarkKeyRotation(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	for range b.N {
		n := harness.NewNode(b, harness.NewNetwork(b), 2)
		n.StageImages(nil)
		n.StartServerNode("--node-name", "server-1", "--disable", "coredns,local-storage,metrics-server")
		n.WaitReadyz(2 * time.Minute)
		n.WaitNodeReady(3 * time.Minute)
		c := fastClient(b, n)
		fill := fillSecrets(b, c)
		ops := []struct {
			name string
			args []string
		}{
			{"certificate-rotate", []string{"certificate", "rotate"}},
			{"rotate-keys-1k-secrets", []string{"secrets-encrypt", "rotate-keys"}},
			{"sa-key-rotate", []string{"service-account-key", "rotate"}},
		}
		fmt.Printf("  fill: %d Secrets of 1 KiB in %s\n", benchSecrets, fill.Round(time.Millisecond))
		for _, op := range ops {
			measureOp(b, n, c, op.name, op.args)
		}
		// A CA rotation replaces the CA the client trusts: the loop's
		// client names the CA and certificate files, as the components'
		// kubeconfigs do (client-go reads them again when they change).
		fc := fileClient(b, n)
		// (Not --retire of them all: it waits for client-go's 5-minute CA
		// reload. Retiring the etcd CA alone waits for nothing and restarts
		// the server: the loop's failures are its outage.)
		measureOp(b, n, fc, "rotate-ca", []string{"certificate", "rotate-ca"})
		measureOp(b, n, fc, "retire-etcd-ca", []string{"certificate", "rotate-ca", "--retire", "--ca", "etcd"})
		n.WaitNodeReady(time.Minute)
		n.Stop(30 * time.Second)
	}
}

// measureOp runs the monokube command args on n while the request loop
// runs through c, and reports its time and the loop's failures as name.
func measureOp(b *testing.B, n *harness.Node, c kubernetes.Interface, name string, args []string) {
	took, load := underLoad(b, c, func() time.Duration {
		start := time.Now()
		r := n.Exec(10*time.Minute, harness.Options{}, append(args, "--data-dir", n.DataDir)...)
		if r.Code != 0 {
			b.Fatalf("%v: exit %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
		took := time.Since(start)
		fmt.Printf("  %s: %s\n%s", strings.Join(args, " "), took.Round(time.Millisecond), indent(r.Stdout))
		return took
	})
	if load.failed > 0 {
		fmt.Printf("  %s: first failed request: %v; failing for %s in a row at most\n", name, load.err, load.outage.Round(time.Millisecond))
	}
	report(b, name+"-s", took.Seconds())
	report(b, name+"-requests", float64(load.done))
	report(b, name+"-failed", float64(load.failed))
	report(b, name+"-outage-s", load.outage.Seconds())
}

// fileClient is an admin client of n that reads the server CA and the
// admin certificate from their files.
func fileClient(b *testing.B, n *harness.Node) kubernetes.Interface {
	cfg := n.RESTConfig()
	tls := filepath.Join(n.DataDir, "server", "tls")
	cfg.TLSClientConfig = rest.TLSClientConfig{CAFile: filepath.Join(tls, "server-ca.crt"),
		CertFile: filepath.Join(tls, "client-admin.crt"), KeyFile: filepath.Join(tls, "client-admin.key")}
	cfg.QPS, cfg.Burst = 1000, 1000
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// fillSecrets creates benchSecrets Secrets of 1 KiB in default, fillWorkers
// at a time, and returns how long that took.
func fillSecrets(b *testing.B, c kubernetes.Interface) time.Duration {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	payload := strings.Repeat("x", 1024)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range fillWorkers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < benchSecrets && ctx.Err() == nil; i = next.Add(1) - 1 {
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s-" + strconv.FormatInt(i, 10)}, StringData: map[string]string{"payload": payload}}
				wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := c.CoreV1().Secrets(metav1.NamespaceDefault).Create(wctx, s, metav1.CreateOptions{})
				wcancel()
				if err != nil && !apierrors.IsAlreadyExists(err) {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d Secrets could not be made", failed.Load(), benchSecrets)
	}
	return time.Since(start)
}

// loadRun is what the request loop saw.
type loadRun struct {
	done, failed int
	err          error         // the first failure
	outage       time.Duration // the longest run of failures, from the first's start to the next success's
}

// underLoad runs op while a loop reads Secret s-0 and creates a ConfigMap
// every 50 ms through c, until 10 s after op returned (at most 20,000
// rounds); it returns op's result and what the loop saw.
func underLoad(b *testing.B, c kubernetes.Interface, op func() time.Duration) (time.Duration, loadRun) {
	stop := make(chan struct{})
	done := make(chan loadRun)
	go func() {
		var r loadRun
		var failingSince time.Time
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				done <- r
				return
			case <-time.After(50 * time.Millisecond):
			}
			sent := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.CoreV1().Secrets(metav1.NamespaceDefault).Get(ctx, "s-0", metav1.GetOptions{})
			if err == nil {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "load-"}}
				_, err = c.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, cm, metav1.CreateOptions{})
			}
			cancel()
			r.done++
			switch {
			case err != nil && failingSince.IsZero():
				failingSince = sent
			case err == nil && !failingSince.IsZero():
				r.outage = max(r.outage, time.Since(failingSince))
				failingSince = time.Time{}
			}
			if err != nil {
				r.failed++
				if r.err == nil {
					r.err = err
				}
			}
		}
		done <- r
	}()
	took := op()
	time.Sleep(10 * time.Second)
	close(stop)
	r := <-done
	if r.done == 0 {
		b.Fatal("the request loop made no request")
	}
	return took, r
}

// indent prefixes each line of s for the benchmark's output.
func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
