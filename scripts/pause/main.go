// Command pause is the sandbox ("pause") container's process: it holds a
// pod's namespaces open, reaps the zombies of processes that end up as its
// children (it is PID 1 of the pod when the PID namespace is shared), and
// exits 0 on SIGINT or SIGTERM. The Makefile packs it into the pause image
// embedded in monokube, so no node ever pulls one.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}

// reap collects every exited child without blocking. SIGCHLD signals
// coalesce, so one signal can stand for several exits: loop until none is
// left.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ECHILD):
			return // no children left
		case err != nil:
			fmt.Fprintf(os.Stderr, "pause: reap children: %v\n", err)
			return
		case pid == 0:
			return // children remain, none has exited
		}
	}
}
