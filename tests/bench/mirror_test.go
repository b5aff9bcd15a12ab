//go:build e2e

package bench

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/monokube/monokube/tests/harness"
)

// mirrorRounds is how many images each way BenchmarkMirror moves.
const mirrorRounds = 3

// BenchmarkMirror compares, side by side on one agent, the two ways an
// image reaches a node: pulled from a peer's embedded registry mirror
// (the server imported it) and imported from a local tarball. Each round
// uses new 50 MiB single-layer images (random, so incompressible), so
// nothing is cached. It also reads the server's RSS (the mirror runs in
// its process) at idle and at its peak while serving, and, first, the
// idle RSS of the same server and agent without the mirror and with it.
func BenchmarkMirror(b *testing.B) {
	harness.RequireRoot(b)
	harness.GuardHostSysctls(b)
	for range b.N {
		network := harness.NewNetwork(b)
		srv, agent := mirrorCluster(b, network, 2)
		idleOff := idleRSS(b, srv)
		agent.Stop(30 * time.Second)
		srv.Stop(30 * time.Second)
		srv, agent = mirrorCluster(b, network, 4, "--embedded-registry")
		idleOn := idleRSS(b, srv)
		dir := b.TempDir()
		var pulls, imports []float64
		var peak float64
		for round := range mirrorRounds {
			peer := writeRandomImage(b, dir, fmt.Sprintf("peer-%d", round))
			local := writeRandomImage(b, dir, fmt.Sprintf("local-%d", round))
			run(b, srv, "images", "import", peer.file)
			time.Sleep(5 * time.Second) // the server settles after the import
			stop := sampleRSS(b, srv.PID())
			pulls = append(pulls, run(b, agent, "crictl", "pull", peer.ref))
			peak = max(peak, stop())
			imports = append(imports, run(b, agent, "images", "import", local.file))
		}
		if !srv.MirrorServedBlob("agent-1") {
			b.Errorf("the server's mirror logged no blob served to agent-1: the pulls did not come from the peer\n%s", srv.LogTail(20))
		}
		fmt.Printf("  pulls from the peer %.2f s, local imports %.2f s\n", pulls, imports)
		report(b, "peer-pull-50MiB-s", percentile(pulls, 50))
		report(b, "local-import-50MiB-s", percentile(imports, 50))
		report(b, "server-rss-idle-off-MiB", idleOff)
		report(b, "server-rss-idle-MiB", idleOn)
		report(b, "server-rss-serving-MiB", peak)
	}
}

// mirrorCluster starts a server with its node (addons off) at octet and
// an agent at the next, with extra server flags, and waits for both nodes.
func mirrorCluster(b *testing.B, network *harness.Network, octet int, extra ...string) (srv, agent *harness.Node) {
	srv = harness.NewNode(b, network, octet)
	srv.StartServerNode(append([]string{"--node-name", "server-1", "--disable", "coredns,local-storage,metrics-server"}, extra...)...)
	srv.WaitReadyz(2 * time.Minute)
	agent = harness.NewNode(b, network, octet+1)
	agent.StartAgent(srv, srv.JoinToken(), "agent-1")
	agent.WaitNodesReady(srv, 2)
	return srv, agent
}

// idleRSS is the server's RSS after 30 s with both nodes Ready.
func idleRSS(b *testing.B, srv *harness.Node) float64 {
	time.Sleep(30 * time.Second)
	return rssMiB(b, srv.PID())
}

// randomImage is an image tarball and its name.
type randomImage struct{ file, ref string }

// writeRandomImage writes a docker-archive of a new random image of one
// 50 MiB layer into dir.
func writeRandomImage(b *testing.B, dir, tag string) randomImage {
	img, err := random.Image(50<<20, 1)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH // a node imports its own platform's images only
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		b.Fatal(err)
	}
	ref, err := name.NewTag("monokube.local/bench-mirror:" + tag)
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(dir, tag+".tar")
	if err := tarball.WriteToFile(file, ref, img); err != nil {
		b.Fatal(err)
	}
	return randomImage{file: file, ref: ref.String()}
}

// run runs monokube args on node n and returns how long it took.
func run(b *testing.B, n *harness.Node, args ...string) float64 {
	start := time.Now()
	r := n.Exec(5*time.Minute, n.Local(), args...)
	took := time.Since(start).Seconds()
	if r.Code != 0 {
		b.Fatalf("monokube %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return took
}

// sampleRSS reads pid's RSS every 100 ms until the returned func is
// called, which returns the highest.
func sampleRSS(b *testing.B, pid int) func() float64 {
	var mu sync.Mutex
	highest := rssMiB(b, pid)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				v, _ := readProcMiB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") // 0 if it exited
				mu.Lock()
				highest = max(highest, v)
				mu.Unlock()
			}
		}
	}()
	return func() float64 {
		close(done)
		<-stopped
		mu.Lock()
		defer mu.Unlock()
		return highest
	}
}
