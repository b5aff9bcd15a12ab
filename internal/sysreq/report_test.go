package sysreq

import (
	"errors"
	"slices"
	"testing"
)

func sample() Report {
	return Report{
		ok("cgroups", "v2 (unified hierarchy), systemd driver"),
		warn("br_netfilter", "not loaded", "run modprobe br_netfilter"),
		fail("port 6443 (--https-listen-port)", "already in use on 0.0.0.0", "stop whatever listens there"),
		ok("swap", "off"),
	}
}

func TestReportString(t *testing.T) {
	r := sample()
	want := "ok    cgroups: v2 (unified hierarchy), systemd driver\n" +
		"warn  br_netfilter: not loaded — fix: run modprobe br_netfilter\n" +
		"fail  port 6443 (--https-listen-port): already in use on 0.0.0.0 — fix: stop whatever listens there\n" +
		"ok    swap: off\n"
	if got := r.String(); got != want {
		t.Errorf("String =\n%s\nwant\n%s", got, want)
	}
	if got := r.Summary(); got != "2 ok, 1 warn, 1 fail" {
		t.Errorf("Summary = %q", got)
	}
}

func TestReportErrOnlyOnFail(t *testing.T) {
	r := sample()
	err := r.Err()
	want := "port 6443 (--https-listen-port): already in use on 0.0.0.0; stop whatever listens there"
	if err == nil || err.Error() != want {
		t.Errorf("Err = %v, want %q", err, want)
	}
	warnOnly := slices.DeleteFunc(slices.Clone(r), func(res Result) bool { return res.Status == Fail })
	if err := warnOnly.Err(); err != nil {
		t.Errorf("Err with warnings only = %v, want nil", err)
	}
	twice := append(slices.Clone(r), fail("root", "monokube server must run as root", "run it with sudo"))
	var joined interface{ Unwrap() []error }
	if !errors.As(twice.Err(), &joined) || len(joined.Unwrap()) != 2 {
		t.Errorf("Err = %v, want both failures joined", twice.Err())
	}
}

func TestReportWarnings(t *testing.T) {
	r := append(sample(), warn("vxlan", "cannot tell", "run modprobe vxlan"))
	got := r.Warnings("br_netfilter: not loaded; run modprobe br_netfilter")
	if !slices.Equal(got, []string{"vxlan: cannot tell; run modprobe vxlan"}) {
		t.Errorf("Warnings = %q", got)
	}
}
