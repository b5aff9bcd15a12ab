package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// StartServer starts `monokube server --disable-agent` in the node with its
// data, run dir and kubeconfig under the node's scratch dir, plus extra args.
// Output goes to n.LogPath.
func (n *Node) StartServer(extra ...string) {
	n.t.Helper()
	n.start([]string{"server", "--disable-agent", "--write-kubeconfig", n.Kubeconfig}, extra)
}

// StartServerNode starts `monokube server` with its node: the kubelet gets
// the node's private cgroup root.
func (n *Node) StartServerNode(extra ...string) {
	n.t.Helper()
	n.start([]string{"server", "--write-kubeconfig", n.Kubeconfig, "--kubelet-arg", "cgroup-root=" + n.CgroupRoot}, extra)
}

// StartAgent starts `monokube agent` joining server's cluster with token
// (empty: a restart of a node that has joined), as node name.
func (n *Node) StartAgent(server *Node, token, name string, extra ...string) {
	n.t.Helper()
	args := []string{"agent", "--server", server.ServerURL(), "--node-name", name, "--kubelet-arg", "cgroup-root=" + n.CgroupRoot}
	if token != "" {
		args = append(args, "--token", token)
	}
	n.start(args, extra)
}

// StartInstalled starts the binary bin (as installed by monokube install
// under a staging root) with exactly args, as its systemd unit would.
func (n *Node) StartInstalled(bin string, args ...string) {
	n.t.Helper()
	n.run(append([]string{bin}, args...))
}

// ServerURL is the address agents join at.
func (n *Node) ServerURL() string { return "https://" + n.NS.IP + ":6443" }

// start runs the binary with args, the node's paths and address, then
// extra (last, so a test can override any of them).
func (n *Node) start(args, extra []string) {
	n.t.Helper()
	args = append([]string{n.Bin}, args...)
	args = append(args, "--data-dir", n.DataDir, "--run-dir", n.RunDir, "--node-ip", n.NS.IP)
	n.run(append(args, extra...))
}

// run starts argv in the node, with output to n.LogPath.
func (n *Node) run(argv []string) {
	n.t.Helper()
	if n.proc != nil {
		n.t.Fatal("server already running")
	}
	cmd := n.Command(Options{Env: n.Env}, argv...)
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start server: %v", err)
	}
	n.proc, n.exited, n.err = cmd, make(chan struct{}), nil
	go func() {
		n.err = cmd.Wait()
		close(n.exited)
	}()
}

// Stop sends SIGTERM and waits up to timeout. It returns the exit code and
// how long the process took to exit; on timeout it kills the process and
// fails the test.
func (n *Node) Stop(timeout time.Duration) (int, time.Duration) {
	n.t.Helper()
	if n.proc == nil {
		n.t.Fatal("server not running")
	}
	start := time.Now()
	_ = n.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(timeout):
		n.kill()
		n.t.Fatalf("server did not exit within %s of SIGTERM\n%s", timeout, n.LogTail(30))
	}
	took := time.Since(start)
	n.proc = nil
	var ee *exec.ExitError
	if errors.As(n.err, &ee) {
		return ee.ExitCode(), took
	}
	if n.err != nil {
		n.t.Fatalf("wait for server: %v", n.err)
	}
	return 0, took
}

// Exited reports whether the server process has ended (e.g. crashed).
func (n *Node) Exited() <-chan struct{} { return n.exited }

// Kill kills the node's whole process group (monokube, its containerd) at
// once with SIGKILL, as a crash or a power cut would, and waits for it.
func (n *Node) Kill() {
	n.t.Helper()
	if n.proc == nil {
		n.t.Fatal("server not running")
	}
	n.kill()
}

// kill stops the whole process group at once; used in cleanup.
func (n *Node) kill() {
	if n.proc == nil {
		return
	}
	_ = syscall.Kill(-n.proc.Process.Pid, syscall.SIGKILL)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
	}
	n.proc = nil
}

// LogTail returns the last lines of the server's log, for failure messages.
func (n *Node) LogTail(lines int) string {
	b, _ := os.ReadFile(n.LogPath)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// LogLinesSince are the lines of the node's log holding sub and stamped
// at since or after.
func (n *Node) LogLinesSince(sub string, since time.Time) []string {
	b, _ := os.ReadFile(n.LogPath)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if at, ok := LogTime(l); ok && !at.Before(since) && strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// LogTime is the time= stamp of a line of monokube's log.
func LogTime(line string) (time.Time, bool) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "time="); ok {
			at, err := time.Parse(time.RFC3339Nano, v)
			return at, err == nil
		}
	}
	return time.Time{}, false
}

// Kubectl runs `monokube kubectl --kubeconfig <node's> args...` in the node
// and returns stdout; a failure fails the test.
func (n *Node) Kubectl(args ...string) string {
	n.t.Helper()
	r := n.Exec(time.Minute, Options{}, append([]string{"kubectl", "--kubeconfig", n.Kubeconfig}, args...)...)
	if r.Code != 0 {
		n.t.Fatalf("kubectl %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

// WaitFor polls cond every 200ms until it returns true or timeout passes;
// it fails the test with what on timeout or if the server exits meanwhile.
func (n *Node) WaitFor(timeout time.Duration, what string, cond func(context.Context) (bool, error)) time.Duration {
	n.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return time.Since(start)
		}
		last = err
		select {
		case <-ctx.Done():
			n.t.Fatalf("timed out after %s waiting for %s (last error: %v)\n%s", timeout, what, last, n.LogTail(60))
		case <-n.exited:
			n.t.Fatalf("server exited while waiting for %s: %v\n%s", what, n.err, n.LogTail(40))
		case <-tick.C:
		}
	}
}

// PID is the server's process id. The process is monokube itself: ip netns
// exec and the masking shell both exec into it.
func (n *Node) PID() int {
	n.t.Helper()
	if n.proc == nil {
		n.t.Fatal("server not running")
	}
	return n.proc.Process.Pid
}

// BalancedServers is what `monokube servers -o json` prints on a node:
// the servers its API load balancer knows and the one in use.
type BalancedServers struct {
	Current string `json:"current"`
	Servers []struct {
		Address string `json:"address"`
		Healthy bool   `json:"healthy"`
	} `json:"servers"`
}

// Servers asks the node's load balancer which servers it knows; zero when
// the command fails (the balancer's state not written yet).
func (n *Node) Servers() BalancedServers {
	n.t.Helper()
	var st BalancedServers
	r := n.Exec(time.Minute, Options{}, "servers", "--data-dir", n.DataDir, "-o", "json")
	_ = json.Unmarshal([]byte(r.Stdout), &st)
	return st
}

// EtcdMember is a row of `monokube etcd members -o json`.
type EtcdMember struct {
	Name    string `json:"name"`
	Learner bool   `json:"learner"`
	Healthy bool   `json:"healthy"`
	Leader  bool   `json:"leader"`
}

// EtcdMembers lists etcd's members as n's server sees them.
func (n *Node) EtcdMembers() ([]EtcdMember, error) {
	n.t.Helper()
	var ms []EtcdMember
	r := n.Exec(time.Minute, Options{}, "etcd", "members", "-o", "json")
	if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil {
		return nil, fmt.Errorf("etcd members: exit %d: %w\n%s", r.Code, err, r.Stderr)
	}
	return ms, nil
}

// EtcdLeader is the name of the member that leads, as n's server sees it.
func (n *Node) EtcdLeader() string {
	n.t.Helper()
	ms, err := n.EtcdMembers()
	if err != nil {
		n.t.Fatal(err)
	}
	for _, m := range ms {
		if m.Leader {
			return m.Name
		}
	}
	n.t.Fatalf("no etcd leader among %+v", ms)
	return ""
}
