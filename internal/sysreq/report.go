package sysreq

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// Status is how well the machine meets one requirement.
type Status int

// The statuses, from best to worst.
const (
	OK   Status = iota // met
	Warn               // monokube runs, but adapts or works less well
	Fail               // monokube refuses to start
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	default:
		return "fail"
	}
}

// Result is the verdict on one requirement.
type Result struct {
	Name   string // what was checked: "cgroups", "port 6443 (kubelet port)"
	Status Status
	Detail string // what was found, phrased to follow "Name: "
	Fix    string // what to do about a Warn or Fail
}

func ok(name, detail string) Result { return Result{Name: name, Status: OK, Detail: detail} }

func warn(name, detail, fix string) Result {
	return Result{Name: name, Status: Warn, Detail: detail, Fix: fix}
}

func fail(name, detail, fix string) Result {
	return Result{Name: name, Status: Fail, Detail: detail, Fix: fix}
}

// Message says what was found and what to do, as one sentence for a log
// line or an error.
func (r Result) Message() string {
	msg := r.Name + ": " + r.Detail
	if r.Fix != "" {
		msg += "; " + r.Fix
	}
	return msg
}

// Err is the result as an error if it failed, else nil.
func (r Result) Err() error {
	if r.Status != Fail {
		return nil
	}
	return errors.New(r.Message())
}

// Line is the result as one line of `monokube check-config`:
// "warn  br_netfilter: not loaded: … — fix: run modprobe br_netfilter".
func (r Result) Line() string {
	line := fmt.Sprintf("%-6s%s: %s", r.Status, r.Name, r.Detail)
	if r.Status != OK && r.Fix != "" {
		line += " — fix: " + r.Fix
	}
	return line
}

// Report is the verdict on every requirement of a role, in check order.
type Report []Result

// Err joins the failures, each saying what to do; nil if none failed.
func (r Report) Err() error {
	var errs []error
	for _, res := range r {
		errs = append(errs, res.Err())
	}
	return errors.Join(errs...)
}

// Warnings are the messages of the Warn results, except those in skip
// (the node's adaptations, which node.Prepare logs as it applies them).
func (r Report) Warnings(skip ...string) []string {
	var out []string
	for _, res := range r {
		if msg := res.Message(); res.Status == Warn && !slices.Contains(skip, msg) {
			out = append(out, msg)
		}
	}
	return out
}

// Count is how many results have status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, res := range r {
		if res.Status == s {
			n++
		}
	}
	return n
}

// String is one Line per result, each ending in a newline.
func (r Report) String() string {
	var b strings.Builder
	for _, res := range r {
		b.WriteString(res.Line())
		b.WriteByte('\n')
	}
	return b.String()
}

// Summary counts the results: "12 ok, 2 warn, 0 fail".
func (r Report) Summary() string {
	return fmt.Sprintf("%d ok, %d warn, %d fail", r.Count(OK), r.Count(Warn), r.Count(Fail))
}

// Admit is the preflight's verdict at start: the joined failures, or nil
// after logging each warning once (except skip, which the node logs as
// it adapts).
func (r Report) Admit(log *slog.Logger, skip ...string) error {
	if err := r.Err(); err != nil {
		return err
	}
	for _, msg := range r.Warnings(skip...) {
		log.Warn(msg)
	}
	return nil
}
