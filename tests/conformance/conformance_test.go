//go:build conformance

// Package conformance_test runs the Kubernetes [Conformance] suite of the
// pinned k8s.io/kubernetes against monokube, offline: one server and one
// agent in the e2e harness's namespaces, every image the suite runs
// preloaded on both from one archive, the non-serial specs in parallel
// processes and the [Serial] ones after, each phase bounded in time. `make
// conformance` builds what it needs and runs it; see README.md.
//
// Inputs (the Makefile sets them): MONOKUBE_BIN, CONFORMANCE_DIR (e2e.test,
// ginkgo, kubectl and images.tar), CONFORMANCE_RESULTS (the output dir);
// optional CONFORMANCE_PROCS (parallel processes, default 4),
// CONFORMANCE_TIMEOUT (per phase, default 90m) and CONFORMANCE_FOCUS (a
// regexp: run only the matching [Conformance] specs, to re-check a fix).
package conformance_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/monokube/monokube/tests/harness"
)

// config is the run's inputs, read once from the environment.
type config struct {
	dir, results, focus string
	procs               int
	timeout             time.Duration
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{dir: os.Getenv("CONFORMANCE_DIR"), results: os.Getenv("CONFORMANCE_RESULTS"),
		focus: os.Getenv("CONFORMANCE_FOCUS"), procs: 4, timeout: 90 * time.Minute}
	if c.dir == "" || c.results == "" {
		t.Fatal("CONFORMANCE_DIR and CONFORMANCE_RESULTS must be set: run `make conformance`")
	}
	if v := os.Getenv("CONFORMANCE_PROCS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CONFORMANCE_PROCS=%q: want a positive number", v)
		}
		c.procs = n
	}
	if v := os.Getenv("CONFORMANCE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CONFORMANCE_TIMEOUT=%q: %v", v, err)
		}
		c.timeout = d
	}
	for _, f := range []string{"e2e.test", "ginkgo", "kubectl", "images.tar"} {
		if _, err := os.Stat(filepath.Join(c.dir, f)); err != nil {
			t.Fatalf("%v (make conformance builds it)", err)
		}
	}
	if err := os.MkdirAll(c.results, 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	harness.RequireRoot(t)
	harness.GuardHostSysctls(t)
	cfg := loadConfig(t)
	srv := startCluster(t, cfg)

	var results []phaseResult
	for _, p := range phases(cfg) {
		r := runPhase(t, cfg, srv, p)
		t.Logf("%s: %s", p.name, r.summary())
		results = append(results, r)
	}
	total := combine(results)
	writeSummary(t, cfg, results, total)
	t.Logf("conformance: %s (results in %s)", total.summary(), cfg.results)
	if total.passed+len(total.failed)+len(total.skipped) == 0 {
		t.Fatal("no [Conformance] spec ran: the reports hold none")
	}
	for _, f := range total.failed {
		t.Errorf("failed: %s", f)
	}
	for _, s := range total.skipped {
		t.Errorf("skipped at run time: %s", s)
	}
}

// startCluster starts server-1 (with its node) and agent-1, both holding
// the suite's images, waits until both nodes are Ready and list them, and
// returns the server (the agent is stopped at cleanup).
func startCluster(t *testing.T, cfg config) *harness.Node {
	t.Helper()
	network := harness.NewNetwork(t)
	srv := harness.NewNode(t, network, 2)
	agent := harness.NewNode(t, network, 3)
	images := filepath.Join(cfg.dir, "images.tar")
	srv.StageImageFile(images)
	agent.StageImageFile(images)
	// The embedded registry mirror lets imagePullPolicy Always resolve
	// against the nodes, which hold every image of the suite.
	srv.StartServerNode("--node-name", "server-1", "--embedded-registry")
	srv.WaitReadyz(2 * time.Minute)
	srv.WaitNodeReady(5 * time.Minute)
	agent.StartAgent(srv, srv.JoinToken(), "agent-1")
	agent.WaitNodesReady(srv, 2)
	srv.WaitNodesHoldImage(5*time.Minute, agnhost)
	return srv
}

// agnhost is the suite's most used image; once both nodes list it, the
// archive has been imported on both.
const agnhost = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
