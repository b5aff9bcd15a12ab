//go:build conformance

package conformance_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/monokube/monokube/tests/harness"
)

// phase is one ginkgo run over a part of the suite.
type phase struct {
	name   string
	labels string // ginkgo label filter
	serial bool   // which [Conformance] specs belong to this phase
	procs  int
}

func phases(cfg config) []phase {
	return []phase{
		{name: "parallel", labels: "Conformance && !Serial && !Disruptive", procs: cfg.procs},
		{name: "serial", labels: "Conformance && Serial", serial: true, procs: 1},
	}
}

// phaseResult is what one phase's report says.
type phaseResult struct {
	name            string
	passed          int
	failed, skipped []string // spec texts
	took            time.Duration
}

func (r phaseResult) summary() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped at run time, in %s",
		r.passed, len(r.failed), len(r.skipped), r.took.Round(time.Second))
}

func combine(rs []phaseResult) phaseResult {
	total := phaseResult{name: "total"}
	for _, r := range rs {
		total.passed += r.passed
		total.failed = append(total.failed, r.failed...)
		total.skipped = append(total.skipped, r.skipped...)
		total.took += r.took
	}
	return total
}

// runPhase runs ginkgo with e2e.test inside the server's namespaces (the
// admin kubeconfig points at its loopback), with the output in
// <results>/<phase>.log and the JSON and JUnit reports beside it, and reads
// the JSON report back. A failing spec is not a failure of this function:
// the caller reports them all.
func runPhase(t *testing.T, cfg config, srv *harness.Node, p phase) phaseResult {
	t.Helper()
	logPath := filepath.Join(cfg.results, p.name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := srv.Command(harness.Options{}, ginkgoArgs(cfg, srv, p)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = cfg.results, logf, logf
	start := time.Now()
	t.Logf("%s: ginkgo with %d process(es), up to %s; output in %s", p.name, p.procs, cfg.timeout, logPath)
	runErr := cmd.Run() // non-zero whenever a spec fails; the report says which
	r := readReport(t, cfg, p)
	r.took = time.Since(start)
	if runErr != nil && len(r.failed) == 0 {
		t.Errorf("%s: ginkgo: %v with no failed spec in its report; see %s", p.name, runErr, logPath)
	}
	return r
}

func ginkgoArgs(cfg config, srv *harness.Node, p phase) []string {
	args := []string{
		filepath.Join(cfg.dir, "ginkgo"),
		"--procs=" + fmt.Sprint(p.procs), "--timeout=" + cfg.timeout.String(),
		"--label-filter=" + p.labels, "--no-color", "--silence-skips", "--poll-progress-after=10m",
		"--output-dir=" + cfg.results, "--json-report=" + p.name + ".json", "--junit-report=" + p.name + ".xml",
	}
	if cfg.focus != "" {
		args = append(args, "--focus="+cfg.focus)
	}
	return append(args, filepath.Join(cfg.dir, "e2e.test"), "--",
		"--kubeconfig="+srv.Kubeconfig, "--provider=skeleton",
		"--kubectl-path="+filepath.Join(cfg.dir, "kubectl"),
		"--report-dir="+filepath.Join(cfg.results, p.name),
		"--disable-log-dump",
	)
}

// readReport counts the phase's [Conformance] specs by outcome and writes
// each failure's log to <results>/failures/.
func readReport(t *testing.T, cfg config, p phase) phaseResult {
	t.Helper()
	r := phaseResult{name: p.name}
	data, err := os.ReadFile(filepath.Join(cfg.results, p.name+".json"))
	if err != nil {
		t.Errorf("%s: no report: %v", p.name, err)
		return r
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		t.Errorf("%s: report: %v", p.name, err)
		return r
	}
	focus := regexp.MustCompile(cfg.focus)
	for _, rep := range reports {
		for _, s := range rep.SpecReports {
			if !inPhase(s, p) || !focus.MatchString(s.FullText()) {
				continue
			}
			switch {
			case s.State.Is(types.SpecStatePassed):
				r.passed++
			case s.State.Is(types.SpecStateSkipped | types.SpecStatePending):
				r.skipped = append(r.skipped, s.FullText()+": "+s.Failure.Message)
			default:
				r.failed = append(r.failed, s.FullText())
				writeFailure(t, cfg, p, len(r.failed), s)
			}
		}
	}
	sort.Strings(r.failed)
	return r
}

// inPhase reports whether s is a [Conformance] spec of phase p.
func inPhase(s types.SpecReport, p phase) bool {
	if s.LeafNodeType != types.NodeTypeIt {
		return false
	}
	labels := map[string]bool{}
	for _, l := range s.Labels() {
		labels[l] = true
	}
	return labels["Conformance"] && labels["Serial"] == p.serial && (p.serial || !labels["Disruptive"])
}

func writeFailure(t *testing.T, cfg config, p phase, n int, s types.SpecReport) {
	t.Helper()
	dir := filepath.Join(cfg.results, "failures")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nstate: %s, run time %s\n\n%s\n%s\n", s.FullText(), s.State, s.RunTime.Round(time.Millisecond),
		s.Failure.Message, s.Failure.Location)
	fmt.Fprintf(&b, "\n--- output\n%s\n%s\n", s.CapturedGinkgoWriterOutput, s.CapturedStdOutErr)
	name := fmt.Sprintf("%s-%03d-%s.log", p.name, n, slug(s.LeafNodeText))
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

var nonWord = regexp.MustCompile(`[^a-zA-Z0-9]+`)

func slug(s string) string {
	s = strings.Trim(nonWord.ReplaceAllString(s, "-"), "-")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// writeSummary writes <results>/summary.txt: the figures per phase and the
// names of the failed and skipped specs.
func writeSummary(t *testing.T, cfg config, rs []phaseResult, total phaseResult) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "conformance run %s: %s\n", time.Now().UTC().Format(time.RFC3339), total.summary())
	for _, r := range rs {
		fmt.Fprintf(&b, "%s: %s\n", r.name, r.summary())
	}
	for _, f := range total.failed {
		fmt.Fprintf(&b, "FAILED %s\n", f)
	}
	for _, s := range total.skipped {
		fmt.Fprintf(&b, "SKIPPED %s\n", s)
	}
	if err := os.WriteFile(filepath.Join(cfg.results, "summary.txt"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Print(b.String())
}
