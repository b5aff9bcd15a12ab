//go:build e2e

// Package bench measures monokube as users run it: binary size, cold start
// and restart to /readyz, node Ready, pod start-up and resident memory. It
// prints figures and never fails on time (make bench).
package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monokube/monokube/tests/harness"
)

// idleFor is how long the server idles before its RSS is read.
const idleFor = 60 * time.Second

func BenchmarkServer(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	for range b.N {
		n := harness.NewNode(b, harness.NewNetwork(b), 2)
		fi, err := os.Stat(n.Bin)
		if err != nil {
			b.Fatal(err)
		}
		n.StartServer()
		cold := n.WaitReadyz(2 * time.Minute)
		_, stop := n.Stop(10 * time.Second)
		n.StartServer()
		warm := n.WaitReadyz(2 * time.Minute)
		time.Sleep(idleFor) // the measurement is of an idle server
		rss := rssMiB(b, n.PID())
		_, stop2 := n.Stop(10 * time.Second)

		report(b, "binary-MiB", float64(fi.Size())/(1<<20))
		report(b, "cold-readyz-s", cold.Seconds())
		report(b, "restart-readyz-s", warm.Seconds())
		report(b, "idle-rss-MiB", rss)
		report(b, "sigterm-exit-s", max(stop, stop2).Seconds())
	}
}

// BenchmarkNode measures a server with its node: start to node Ready, one
// pod to Running, 30 more pods to Running, and the resident memory of
// monokube + containerd idle and per pod (shims included).
func BenchmarkNode(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	for range b.N {
		n := harness.NewNode(b, harness.NewNetwork(b), 2)
		n.StageImages(nil)
		n.StartServerNode()
		ready := n.WaitReadyz(2*time.Minute) + n.WaitNodeReady(3*time.Minute)
		time.Sleep(30 * time.Second) // settle: the idle figure is of an idle node
		idle := nodeRSS(b, n)
		n.Kubectl("apply", "-f", n.EchoDeployment("one", 1))
		one := n.WaitRunning(2*time.Minute, "app=one", 1)
		n.Kubectl("apply", "-f", n.EchoDeployment("many", 30))
		many := n.WaitRunning(5*time.Minute, "app=many", 30)
		time.Sleep(10 * time.Second)
		loaded := nodeRSS(b, n)
		_, stop := n.Stop(30 * time.Second)

		report(b, "node-ready-s", ready.Seconds())
		report(b, "pod-running-s", one.Seconds())
		report(b, "30-pods-running-s", many.Seconds())
		report(b, "idle-node-rss-MiB", idle)
		report(b, "per-pod-rss-MiB", (loaded-idle)/31)
		report(b, "sigterm-exit-s", stop.Seconds())
	}
}

// nodeRSS sums the resident memory of monokube, containerd and the shims.
func nodeRSS(b *testing.B, n *harness.Node) float64 {
	total := rssMiB(b, n.PID())
	if pid := n.ContainerdPID(); pid != 0 {
		total += rssMiB(b, pid)
	}
	for _, pid := range n.ShimPIDs() {
		total += rssMiB(b, pid)
	}
	return total
}

func report(b *testing.B, unit string, v float64) {
	b.ReportMetric(v, unit)
	fmt.Printf("%-18s %8.2f\n", unit, v)
}

// rssMiB reads VmRSS of pid from /proc.
func rssMiB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}
