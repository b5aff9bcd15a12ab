//go:build e2e

// Package bench measures monokube as users run it: binary size, the
// launcher's first unpack, cold start and restart to /readyz, node Ready,
// pod start-up, addons ready and resident memory. It prints figures and
// never fails on time (make bench).
package bench

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
		unpack, again := timeRun(b, n), timeRun(b, n)
		full, err := filepath.Glob(filepath.Join(n.DataDir, "data", "*", "monokube"))
		if err != nil || len(full) != 1 {
			b.Fatalf("unpacked binary: %v (%v)", full, err)
		}
		fullInfo, err := os.Stat(full[0])
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
		report(b, "unpacked-binary-MiB", float64(fullInfo.Size())/(1<<20))
		report(b, "first-run-unpack-s", unpack.Seconds())
		report(b, "later-run-s", again.Seconds())
		report(b, "cold-readyz-s", cold.Seconds())
		report(b, "restart-readyz-s", warm.Seconds())
		report(b, "idle-rss-MiB", rss)
		report(b, "sigterm-exit-s", max(stop, stop2).Seconds())
	}
}

// timeRun times `monokube --version` in the node.
func timeRun(b *testing.B, n *harness.Node) time.Duration {
	start := time.Now()
	if r := n.Exec(time.Minute, harness.Options{}, "--version"); r.Code != 0 {
		b.Fatalf("monokube --version: exit %d: %s", r.Code, r.Stderr)
	}
	return time.Since(start)
}

// BenchmarkNode measures a server with its node, addons disabled so the
// figures are of the node alone: start to node Ready, one
// pod to Running, 30 more pods to Running, and the resident memory of
// monokube + containerd idle and per pod (shims included).
func BenchmarkNode(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	for range b.N {
		n := harness.NewNode(b, harness.NewNetwork(b), 2)
		n.StageImages(nil)
		n.StartServerNode("--disable", "coredns,local-storage,metrics-server")
		ready := n.WaitReadyz(2*time.Minute) + n.WaitNodeReady(3*time.Minute)
		time.Sleep(30 * time.Second) // settle: the idle figure is of an idle node
		idleRSS, idle := nodeMemory(b, n)
		idleMonokube, idleContainerd := rssMiB(b, n.PID()), rssMiB(b, n.ContainerdPID())
		n.Kubectl("apply", "-f", n.EchoDeployment("one", 1))
		one := n.WaitRunning(2*time.Minute, "app=one", 1)
		n.Kubectl("apply", "-f", n.EchoDeployment("many", 30))
		many := n.WaitRunning(5*time.Minute, "app=many", 30)
		time.Sleep(10 * time.Second)
		_, loaded := nodeMemory(b, n)
		_, stop := n.Stop(30 * time.Second)

		report(b, "node-ready-s", ready.Seconds())
		report(b, "pod-running-s", one.Seconds())
		report(b, "30-pods-running-s", many.Seconds())
		report(b, "idle-node-pss-MiB", idle)
		report(b, "idle-node-rss-MiB", idleRSS)
		report(b, "idle-monokube-rss-MiB", idleMonokube)
		report(b, "idle-containerd-rss-MiB", idleContainerd)
		report(b, "per-pod-pss-MiB", (loaded-idle)/31)
		report(b, "sigterm-exit-s", stop.Seconds())
	}
}

// BenchmarkAudit measures the cost of the hardened defaults' audit log:
// the same server with its node (addons off) with the default audit
// policy and with audit off (audit-policy-file= audit-log-path=), one after the other in
// one run, alternating twice: cold start to /readyz and to node Ready, 30
// pods to Running (each a dozen audited writes), and monokube's idle RSS.
// The on/off ratios are the figures that count.
func BenchmarkAudit(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	for range b.N {
		sum := map[string]map[string]float64{"on": {}, "off": {}}
		for round := range 2 {
			for _, mode := range []string{"on", "off"} {
				for k, v := range auditRun(b, round, mode) {
					sum[mode][k] += v / 2
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(sum["on"])) {
			report(b, "audit-on-"+k, sum["on"][k])
			report(b, "audit-off-"+k, sum["off"][k])
			report(b, "audit-ratio-"+k, sum["on"][k]/sum["off"][k])
		}
	}
}

// auditRun starts one server node with audit on or off and measures it.
func auditRun(b *testing.B, round int, mode string) map[string]float64 {
	n := harness.NewNode(b, harness.NewNetwork(b), 2)
	n.StageImages(nil)
	args := []string{"--disable", "coredns,local-storage,metrics-server"}
	if mode == "off" {
		args = append(args, "--kube-apiserver-arg", "audit-policy-file=", "--kube-apiserver-arg", "audit-log-path=")
	}
	n.StartServerNode(args...)
	readyz := n.WaitReadyz(2 * time.Minute)
	ready := readyz + n.WaitNodeReady(3*time.Minute)
	name := fmt.Sprintf("many-%d-%s", round, mode)
	n.Kubectl("apply", "-f", n.EchoDeployment(name, 30))
	pods := n.WaitRunning(5*time.Minute, "app="+name, 30)
	time.Sleep(20 * time.Second) // settle before the memory figure
	rss := rssMiB(b, n.PID())
	audit := filepath.Join(n.DataDir, "server", "logs", "audit.log")
	if fi, err := os.Stat(audit); (err == nil && fi.Size() > 0) != (mode == "on") {
		b.Fatalf("audit %s, yet audit.log holds records: %v", mode, err == nil && fi.Size() > 0)
	}
	n.Stop(30 * time.Second)
	return map[string]float64{"readyz-s": readyz.Seconds(), "node-ready-s": ready.Seconds(),
		"30-pods-running-s": pods.Seconds(), "idle-rss-MiB": rss}
}

// BenchmarkAddons measures the default install: cold start to every addon
// Deployment available, and the idle memory of the whole node with them
// (monokube, containerd, shims and every container process).
func BenchmarkAddons(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	for range b.N {
		n := harness.NewNode(b, harness.NewNetwork(b), 2)
		n.StartServerNode()
		n.WaitReadyz(2 * time.Minute)
		ready := n.WaitDeploymentsAvailable(4*time.Minute, "kube-system", "coredns", "local-path-provisioner", "metrics-server")
		cpu0, at0 := cpuSeconds(n.AllPIDs()), time.Now()
		time.Sleep(idleFor)
		idleCPU := (cpuSeconds(n.AllPIDs()) - cpu0) / time.Since(at0).Seconds() * 100
		rss, pss := processMemory(b, n.AllPIDs())
		_, stop := n.Stop(30 * time.Second)

		report(b, "cold-addons-ready-s", ready.Seconds())
		report(b, "idle-node-addons-rss-MiB", rss)
		report(b, "idle-node-addons-pss-MiB", pss)
		report(b, "idle-node-addons-cpu-%", idleCPU)
		report(b, "sigterm-exit-s", stop.Seconds())
	}
}

// cpuSeconds is the CPU time (user + system) pids have used so far.
func cpuSeconds(pids []int) float64 {
	var ticks int
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// After the parenthesised command: state is field 3, utime 14, stime 15.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.Atoi(f[11])
			s, _ := strconv.Atoi(f[12])
			ticks += u + s
		}
	}
	return float64(ticks) / 100 // USER_HZ
}

// processMemory sums the RSS and PSS of pids and prints the PSS by
// program name, largest first, with its anonymous part (heap and stacks;
// the rest is the program's file pages).
func processMemory(b *testing.B, pids []int) (rss, pss float64) {
	byName, anon := map[string]float64{}, map[string]float64{}
	for _, pid := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue // exited since it was listed
		}
		rollup := fmt.Sprintf("/proc/%d/smaps_rollup", pid)
		p := procMiB(b, rollup, "Pss:")
		rss += rssMiB(b, pid)
		pss += p
		name := strings.TrimSpace(string(comm))
		byName[name] += p
		anon[name] += procMiB(b, rollup, "Pss_Anon:")
	}
	names := slices.SortedFunc(maps.Keys(byName), func(a, b string) int { return cmp.Compare(byName[b], byName[a]) })
	for _, name := range names {
		fmt.Printf("  pss %-24s %8.1f MiB (anonymous %.1f)\n", name, byName[name], anon[name])
	}
	return rss, pss
}

// nodeMemory sums the memory of monokube, containerd and the shims: RSS,
// and PSS, which splits pages shared between them (containerd is the same
// binary as monokube, so their code pages are shared) instead of counting
// them once per process. PSS is the memory the node really uses.
func nodeMemory(b *testing.B, n *harness.Node) (rss, pss float64) {
	pids := append([]int{n.PID(), n.ContainerdPID()}, n.ShimPIDs()...)
	for _, pid := range pids {
		if pid != 0 {
			rss += rssMiB(b, pid)
			pss += procMiB(b, fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
		}
	}
	return rss, pss
}

func report(b *testing.B, unit string, v float64) {
	b.ReportMetric(v, unit)
	fmt.Printf("%-18s %8.2f\n", unit, v)
}

// rssMiB reads VmRSS of pid from /proc.
func rssMiB(b *testing.B, pid int) float64 {
	return procMiB(b, fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
}

// procMiB reads a "Key: N kB" line of a /proc file.
func procMiB(b *testing.B, path, key string) float64 {
	v, err := readProcMiB(path, key)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// readProcMiB is procMiB for goroutines, which may not stop the benchmark.
func readProcMiB(path, key string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				return 0, fmt.Errorf("%s: %w", path, err)
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in %s", key, path)
}

// BenchmarkAgent measures a join: a server's node (addons off) plus one
// agent, agent start to node Ready, the agent's idle memory
// (monokube + containerd + shims), and the TCP round trip from a pod on
// the agent to a pod on the same node and to one on the server's node.
func BenchmarkAgent(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	for range b.N {
		network := harness.NewNetwork(b)
		srv := harness.NewNode(b, network, 2)
		srv.StageImages(nil)
		srv.StartServerNode("--node-name", "server-1", "--disable", "coredns,local-storage,metrics-server")
		srv.WaitReadyz(2 * time.Minute)
		srv.WaitNodeReady(3 * time.Minute)
		data, err := os.ReadFile(filepath.Join(srv.DataDir, "server", "token"))
		if err != nil {
			b.Fatal(err)
		}
		agent := harness.NewNode(b, network, 3)
		agent.StageImages(nil)
		start := time.Now()
		agent.StartAgent(srv, strings.TrimSpace(string(data)), "agent-1")
		srv.WaitFor(3*time.Minute, "agent Ready", func(ctx context.Context) (bool, error) {
			out := srv.Exec(time.Minute, harness.Options{}, "kubectl", "--kubeconfig", srv.Kubeconfig, "get", "node", "agent-1",
				"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			return out.Stdout == "True", fmt.Errorf("%s %s", out.Stdout, out.Stderr)
		})
		join := time.Since(start)
		for _, p := range []struct{ name, node string }{{"a1", "agent-1"}, {"a2", "agent-1"}, {"s1", "server-1"}} {
			srv.Kubectl("run", p.name, "--image", harness.EchoImage, "--image-pull-policy", "Never",
				"--overrides", `{"spec":{"nodeSelector":{"kubernetes.io/hostname":"`+p.node+`"}}}`, "--labels", "bench=rtt")
		}
		srv.WaitRunning(2*time.Minute, "bench=rtt", 3)
		rtt := func(target string) float64 {
			ip := srv.Kubectl("get", "pod", target, "-o", "jsonpath={.status.podIP}")
			out := srv.Kubectl("exec", "a1", "--", "/echo", "rtt", ip+":8080", "200")
			us, err := strconv.Atoi(strings.TrimSpace(out))
			if err != nil {
				b.Fatalf("rtt output %q", out)
			}
			return float64(us)
		}
		same, cross := rtt("a2"), rtt("s1")
		time.Sleep(30 * time.Second)
		var pids []int
		for _, pid := range agent.AllPIDs() {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if c := strings.TrimSpace(string(comm)); c == "monokube" || strings.HasPrefix(c, "containerd-shim") {
				pids = append(pids, pid)
			}
		}
		rss, pss := processMemory(b, pids)
		code, stop := agent.Stop(30 * time.Second)
		if code != 0 {
			b.Errorf("agent exit %d after SIGTERM", code)
		}

		report(b, "agent-join-ready-s", join.Seconds())
		report(b, "agent-idle-pss-MiB", pss)
		report(b, "agent-idle-rss-MiB", rss)
		report(b, "pod-rtt-same-node-us", same)
		report(b, "pod-rtt-cross-node-us", cross)
		report(b, "agent-sigterm-exit-s", stop.Seconds())
	}
}

// BenchmarkUpgrade swaps a running server node (addons disabled, 10 echo
// pods) to the next build (make next) and measures the restart: SIGTERM to
// exit, restart (with the new version's first unpack) to /readyz and to
// the kubelet on the new version, and how many containers restarted (0).
func BenchmarkUpgrade(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	next := os.Getenv("MONOKUBE_NEXT_BIN")
	if next == "" {
		b.Fatal("MONOKUBE_NEXT_BIN is not set: make bench builds it (make next)")
	}
	for range b.N {
		n := harness.NewNode(b, harness.NewNetwork(b), 2)
		n.StageImages(nil)
		args := []string{"--disable", "coredns,local-storage,metrics-server"}
		n.StartServerNode(args...)
		n.WaitReadyz(2 * time.Minute)
		n.Kubectl("apply", "-f", n.EchoDeployment("many", 10))
		n.WaitRunning(3*time.Minute, "app=many", 10)
		before := n.Kubectl("get", "pods", "-o", "jsonpath={range .items[*].status.containerStatuses[*]}{.containerID} {.restartCount}{\"\\n\"}{end}")
		_, stop := n.Stop(30 * time.Second)
		n.Bin = next
		start := time.Now()
		n.StartServerNode(args...)
		readyz := n.WaitReadyz(2 * time.Minute)
		n.WaitFor(2*time.Minute, "kubelet on the new version", func(ctx context.Context) (bool, error) {
			out := n.Kubectl("get", "nodes", "-o", "jsonpath={.items[0].status.nodeInfo.kubeletVersion}")
			return strings.HasSuffix(out, "-next"), fmt.Errorf("kubelet %s", out)
		})
		kubelet := time.Since(start)
		after := n.Kubectl("get", "pods", "-o", "jsonpath={range .items[*].status.containerStatuses[*]}{.containerID} {.restartCount}{\"\\n\"}{end}")
		restarted := 0
		for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
			if !strings.Contains(after, line) {
				restarted++
			}
		}
		n.Stop(30 * time.Second)

		report(b, "upgrade-stop-s", stop.Seconds())
		report(b, "upgrade-readyz-s", readyz.Seconds())
		report(b, "upgrade-kubelet-s", kubelet.Seconds())
		report(b, "upgrade-restarted", float64(restarted))
	}
}
