package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// maskedSysctls are the host-wide tunables the kubelet sets at start
// (pkg/kubelet/cm setupKernelTunables), with the values it wants. Each node
// sees a file holding that value bind-mounted over the /proc/sys entry, so
// the host keeps its own values.
var maskedSysctls = map[string]string{ //nolint:gochecknoglobals // fixed table
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// privateDirs are paths each node gets a private copy of: monokube's
// defaults, and the paths the kubelet, CNI and containerd hard-code.
var privateDirs = []string{ //nolint:gochecknoglobals // fixed table
	"/etc/monokube", "/var/lib/monokube", "/run/monokube",
	"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/var/lib/cni",
	"/run/containerd", "/run/flannel", "/etc/cni", "/opt/cni",
	// monokube install's targets, and systemd's marker: a node never
	// sees (or drives) the host's systemd.
	"/etc/systemd/system", "/usr/local/bin", "/run/systemd",
}

// Node is one monokube process (or short command) in its own namespaces.
type Node struct {
	t          testing.TB
	Bin        string
	NS         *Netns
	Dir        string // scratch root of this node
	DataDir    string
	RunDir     string
	Kubeconfig string
	LogPath    string
	CgroupRoot string // the kubelet's --cgroup-root, private to this node
	// Env is extra environment (KEY=value) for the processes the Start
	// methods run.
	Env []string

	proc   *exec.Cmd
	exited chan struct{}
	err    error
}

// Bin is the monokube binary under test: $MONOKUBE_BIN, else bin/monokube
// at the repository root.
func Bin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("MONOKUBE_BIN"); b != "" {
		return b
	}
	b, err := filepath.Abs("../../../bin/monokube")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NewNode prepares a node at <prefix>.<octet> on network; nothing runs yet.
func NewNode(t testing.TB, network *Network, octet int) *Node {
	t.Helper()
	dir := t.TempDir()
	// Registered first, so it runs after every other cleanup of this node.
	var n *Node
	chains := hostChains()
	t.Cleanup(func() {
		if n != nil {
			checkNoResidue(t, n.NS.Name, dir, chains)
		}
	})
	n = &Node{
		t: t, Bin: Bin(t), NS: network.AddHost(t, octet), Dir: dir,
		DataDir: filepath.Join(dir, "data"), RunDir: filepath.Join(dir, "run"),
		Kubeconfig: filepath.Join(dir, "kubeconfig.yaml"), LogPath: filepath.Join(dir, "monokube.log"),
	}
	for _, d := range privateDirs {
		ensureMountpoint(t, d)
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Cleanup runs last-registered first: processes, then cgroups, then
	// (registered by AddHost) the network namespace.
	n.CgroupRoot = NewCgroupRoot(t, n.NS.Name)
	n.newMountNS()
	t.Cleanup(func() {
		n.kill()
		killNetnsProcs(n.NS.Name)
	})
	return n
}

// Options change how a command is started inside the node.
type Options struct {
	Setup []string // shell lines run inside the namespaces before the command
	User  string   // run as this uid:gid instead of root
	Env   []string // extra environment variables, KEY=value
}

// MountNS is the file that holds the node's mount namespace open.
func (n *Node) MountNS() string { return filepath.Join(n.Dir, "ns", "mnt") }

// newMountNS creates the node's own mount namespace, which lives as long
// as the node, as a machine's does: processes started one after another
// (a restart, an upgrade, killall) see each other's mounts. Inside it,
// before anything runs: the kernel tunables are masked, /sys is the
// network namespace's (as `ip netns exec` does), the cgroup hierarchies
// are mounted again below it, and the private directories are bound.
func (n *Node) newMountNS() {
	t := n.t
	t.Helper()
	holder := filepath.Dir(n.MountNS())
	// The namespace file must sit on a private mount to be bound there.
	run(t, "mkdir", "-p", holder)
	run(t, "mount", "--bind", holder, holder)
	run(t, "mount", "--make-private", holder)
	run(t, "touch", n.MountNS())
	t.Cleanup(func() {
		_ = exec.Command("umount", n.MountNS()).Run()
		_ = exec.Command("umount", holder).Run()
	})
	var s strings.Builder
	s.WriteString("set -e\n")
	fmt.Fprintf(&s, "umount -l /sys; nsenter --net=/run/netns/%s mount -t sysfs sysfs /sys\n", n.NS.Name)
	for k, v := range maskedSysctls {
		f := filepath.Join(n.Dir, "sysctl", strings.ReplaceAll(k, "/", "_"))
		fmt.Fprintf(&s, "mkdir -p %s; echo %s > %s; mount --bind %s /proc/sys/%s\n", filepath.Dir(f), v, f, f, k)
	}
	s.WriteString(cgroupMountScript(t))
	for _, d := range privateDirs {
		h := filepath.Join(n.Dir, "host", d)
		fmt.Fprintf(&s, "mkdir -p %s; mount --bind %s %s\n", h, h, d)
	}
	run(t, "unshare", "--mount="+n.MountNS(), "--propagation", "slave", "sh", "-c", s.String())
}

// Command returns cmd args... to run inside the node's network and mount
// namespaces.
func (n *Node) Command(opts Options, args ...string) *exec.Cmd {
	var s strings.Builder
	s.WriteString("set -e\n")
	for _, l := range opts.Setup {
		s.WriteString(l + "\n")
	}
	if opts.User != "" {
		uid, gid, _ := strings.Cut(opts.User, ":")
		fmt.Fprintf(&s, "exec setpriv --reuid=%s --regid=%s --clear-groups -- \"$@\"\n", uid, gid)
	} else {
		s.WriteString("exec \"$@\"\n")
	}
	argv := append([]string{"--mount=" + n.MountNS(), "--net=/run/netns/" + n.NS.Name, "--", "sh", "-c", s.String(), "sh"}, args...)
	cmd := exec.Command("nsenter", argv...)
	// The launcher unpacks the real binary under the data dir, or else in
	// $TMPDIR: keep both inside the node's scratch dir, also for kubectl.
	cmd.Env = append(os.Environ(), "MONOKUBE_DATA_DIR="+n.DataDir, "TMPDIR="+filepath.Join(n.Dir, "tmp"))
	cmd.Env = append(cmd.Env, opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Result is a finished short command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Exec runs the monokube binary with args inside the node and waits (at
// most timeout).
func (n *Node) Exec(timeout time.Duration, opts Options, args ...string) Result {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := n.Command(opts, append([]string{n.Bin}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %v: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		n.t.Fatalf("monokube %s: still running after %s (killed: %v)\nstderr:\n%s", strings.Join(args, " "), timeout, <-done, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("monokube %v: %v", args, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// ensureMountpoint creates dir on the host if it is missing, for a private
// bind mount, and removes it again (if still empty) when the test ends.
func ensureMountpoint(t testing.TB, dir string) {
	if _, err := os.Stat(dir); err == nil {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create mountpoint %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
}
