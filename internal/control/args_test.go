package control

import (
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/testutil"
)

func TestArgsGolden(t *testing.T) {
	cfg := testutil.ServerConfig(t, "/var/lib/monokube", nil)
	c := NewCreds(datadir.Layout{Data: cfg.DataDir, Run: cfg.RunDir})
	for name, args := range map[string][]string{
		"kube-apiserver":          APIServerArgs(cfg, c),
		"kube-controller-manager": ControllerManagerArgs(cfg, c),
		"kube-scheduler":          SchedulerArgs(cfg, c),
	} {
		t.Run(name, func(t *testing.T) {
			testutil.Golden(t, name, []byte(strings.Join(args, "\n")+"\n"))
		})
	}
}

func TestUserArgsOverrideDefaultsButNotForced(t *testing.T) {
	cfg := testutil.ServerConfig(t, "/var/lib/monokube", func(in *config.ServerInput) {
		in.KubeAPIServerArg = []string{"profiling=true", "--etcd-servers=https://elsewhere:2379", "audit-log-path=/tmp/a"}
	})
	args := APIServerArgs(cfg, NewCreds(datadir.Layout{Data: cfg.DataDir}))
	for _, want := range []string{"--profiling=true", "--etcd-servers=" + etcd.BalancedURL(), "--audit-log-path=/tmp/a"} {
		if !contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, strings.Join(args, "\n"))
		}
	}
	if contains(args, "--profiling=false") {
		t.Error("user's profiling=true did not replace the default")
	}
}

func TestMergeIsSortedAndUnique(t *testing.T) {
	got := Merge(Flags{"b": "1", "a": "2"}, []config.Arg{{Key: "b", Value: "3"}, {Key: "c", Value: ""}}, Flags{"a": "4"})
	want := []string{"--a=4", "--b=3", "--c="}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Merge = %q, want %q", got, want)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestPolicyGolden(t *testing.T) {
	testutil.Golden(t, "admission-config.yaml", AdmissionConfig(PodSecurityBaseline))
	testutil.Golden(t, "audit-policy.yaml", AuditPolicy())
}

// A user's enable-admission-plugins adds to NodeRestriction, never drops it.
func TestAdmissionPluginsKeepNodeRestriction(t *testing.T) {
	got := withNodeRestriction([]config.Arg{{Key: "enable-admission-plugins", Value: "PodSecurity,AlwaysPullImages"}})
	if got != "NodeRestriction,PodSecurity,AlwaysPullImages" {
		t.Errorf("enable-admission-plugins = %q", got)
	}
}
