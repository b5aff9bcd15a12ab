package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/datadir"
)

// ctr, crictl and token find a node whose data dir is set only in its
// config file, as the server, agent and killall do; the environment and
// --data-dir still win over the file.
func TestClientsFollowTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	fromFile := filepath.Join(dir, "from-file")
	if err := os.WriteFile(file, []byte("data-dir: "+fromFile+"\nrun-dir: /run/from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"MONOKUBE_DATA_DIR", "MONOKUBE_RUN_DIR"} {
		t.Setenv(k, "")
	}
	t.Setenv("MONOKUBE_CONFIG", file)
	if l, err := nodeLayout(); err != nil || l != (datadir.Layout{Data: fromFile, Run: "/run/from-file"}) {
		t.Errorf("ctr/crictl layout = %+v, %v; want the config file's dirs", l, err)
	}
	t.Setenv("MONOKUBE_DATA_DIR", "/from-env")
	if l, err := nodeLayout(); err != nil || l.Data != "/from-env" {
		t.Errorf("ctr/crictl data dir = %q, %v; want $MONOKUBE_DATA_DIR over the file", l.Data, err)
	}
	t.Setenv("MONOKUBE_CONFIG", filepath.Join(dir, "missing.yaml"))
	if _, err := nodeLayout(); err == nil {
		t.Error("a named config file that does not exist was ignored")
	}

	t.Setenv("MONOKUBE_DATA_DIR", "")
	t.Setenv("MONOKUBE_CONFIG", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", file}, fromFile},
		{[]string{"--config", file, "--data-dir", "/from-flag"}, "/from-flag"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"monokube", "token", "list"}, c.args...)
		code := Run(context.Background(), args, &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), "in data dir "+c.want+" ") {
			t.Errorf("%v: exit %d, stderr %q; want a refusal naming %s", args, code, errOut.String(), c.want)
		}
	}
}
