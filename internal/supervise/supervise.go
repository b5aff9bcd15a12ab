// Package supervise runs a child process as a lifecycle component and
// restarts it with exponential backoff when it exits on its own.
package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/monokube/monokube/internal/lifecycle"
)

// Spec describes the child to keep running.
type Spec struct {
	Name string
	Path string
	Args []string
	Env  []string // the whole environment; nil inherits monokube's

	// Output receives each line the child writes to stdout or stderr.
	Output func(line []byte)
	// Grace is how long the child gets after SIGTERM before SIGKILL.
	Grace time.Duration
	// The first restart waits MinBackoff, each further one doubles the wait
	// up to MaxBackoff; a child that ran for Stable resets it.
	MinBackoff, MaxBackoff, Stable time.Duration
}

// DefaultSpec fills in the timing fields with sensible values.
func DefaultSpec(name, path string, args ...string) Spec {
	return Spec{Name: name, Path: path, Args: args, Grace: 10 * time.Second,
		MinBackoff: time.Second, MaxBackoff: 30 * time.Second, Stable: 30 * time.Second}
}

// Process is a supervised child process.
type Process struct {
	spec Spec
	log  *slog.Logger

	mu  sync.Mutex
	pid int
}

// New returns a supervisor for spec; nothing starts until Run.
func New(spec Spec, log *slog.Logger) *Process {
	if spec.Output == nil {
		spec.Output = func(line []byte) { log.Info(string(line)) }
	}
	return &Process{spec: spec, log: log}
}

var (
	_ lifecycle.Component = (*Process)(nil)
	_ lifecycle.SlowStop  = (*Process)(nil)
)

// Name implements lifecycle.Component.
func (p *Process) Name() string { return p.spec.Name }

// StopGrace implements lifecycle.SlowStop: the child's grace before SIGKILL,
// and a second for the kill and the reaping, so the group waits for the
// supervisor rather than moving on while the child still runs.
func (p *Process) StopGrace() time.Duration { return p.spec.Grace + time.Second }

// PID is the child's current process ID, 0 while none runs.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Run starts the child and restarts it whenever it exits until ctx ends,
// then stops it (SIGTERM, then SIGKILL after Grace) and returns nil.
func (p *Process) Run(ctx context.Context) error {
	backoff := p.spec.MinBackoff
	for {
		started := time.Now()
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) >= p.spec.Stable {
			backoff = p.spec.MinBackoff
		}
		p.log.Warn("child process ended; restarting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, p.spec.MaxBackoff)
	}
}

// runOnce runs the child until it exits or ctx ends.
func (p *Process) runOnce(ctx context.Context) error {
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = p.spec.Env
	// Its own process group, so a terminal's Ctrl-C reaches monokube only
	// and monokube stops the child in order; and it never outlives monokube.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe for %s: %w", p.spec.Name, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	started, exited := make(chan error, 1), make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, and
		// Go ends threads whose goroutine exits while locked to them. Lock
		// this goroutine to its thread for the child's whole life, so no
		// other goroutine can take the thread with it.
		runtime.LockOSThread()
		err := cmd.Start()
		w.Close() // the child holds its own copy
		if err == nil {
			// Before any output is forwarded, so a reader of a line
			// always sees the PID of the child that wrote it.
			p.setPID(cmd.Process.Pid)
		}
		started <- err
		if err != nil {
			r.Close()
			return
		}
		forwardLines(r, p.spec.Output)
		r.Close()
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", p.spec.Path, err)
	}
	defer p.setPID(0)
	p.log.Info("started child process", "pid", cmd.Process.Pid)
	select {
	case err := <-exited:
		return describeExit(err)
	case <-ctx.Done():
		return p.stop(cmd, exited)
	}
}

// stop ends the child: SIGTERM, then SIGKILL after the grace period.
func (p *Process) stop(cmd *exec.Cmd, exited <-chan error) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(p.spec.Grace):
		p.log.Warn("child did not stop in time; killing it", "grace", p.spec.Grace)
		_ = cmd.Process.Kill()
		return <-exited
	}
}

func forwardLines(r io.Reader, out func([]byte)) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		out(s.Bytes())
	}
	// A line longer than the buffer ends the scan: drain the rest so the
	// child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

func (p *Process) setPID(pid int) {
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
}

func describeExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("child %s", ee.ProcessState)
	}
	if err == nil {
		return errors.New("child exited with status 0")
	}
	return err
}
