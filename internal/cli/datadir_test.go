package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/launcher"
)

// locator is how one command finds the node: data dir and run dir from
// its command line (args after the command's name) and environment.
// hasFlags is false for commands that take none of monokube's flags;
// dataOnly for the launcher, which needs only the data dir.
type locator struct {
	command  string
	hasFlags bool
	dataOnly bool
	find     func(t *testing.T, args []string) (data, run string, err error)
}

// Every command that finds the node follows one rule: flag, then
// MONOKUBE_*, then the config file (--config, $MONOKUBE_CONFIG, the
// default), then the defaults, an empty value counting as unset.
func TestEveryCommandLocatesTheNodeAlike(t *testing.T) {
	if _, err := os.Stat(datadir.DefaultConfig); err == nil {
		t.Fatalf("%s exists on this machine: the default-case rows would read it; move it away to run this test", datadir.DefaultConfig)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte("data-dir: /file/data\nrun-dir: /file/run\nnode-ip: 10.0.0.9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	rows := []struct {
		name      string
		args      []string // flags; rows with flags are skipped for commands without
		env       map[string]string
		data, run string // "" with wantErr
		wantErr   bool   // the launcher falls back to the rest of the rule instead
	}{
		{"defaults", nil, nil, datadir.DefaultData, datadir.DefaultRun, false},
		{"config file from the environment", nil, map[string]string{"MONOKUBE_CONFIG": file}, "/file/data", "/file/run", false},
		{"config file from the flag", []string{"--config", file}, nil, "/file/data", "/file/run", false},
		{"environment over the file", nil, map[string]string{"MONOKUBE_CONFIG": file, "MONOKUBE_DATA_DIR": "/env/data"}, "/env/data", "/file/run", false},
		{"flag over the environment", []string{"--data-dir", "/flag/data"}, map[string]string{"MONOKUBE_CONFIG": file, "MONOKUBE_DATA_DIR": "/env/data"}, "/flag/data", "/file/run", false},
		{"empty variables are unset", nil, map[string]string{"MONOKUBE_CONFIG": file, "MONOKUBE_DATA_DIR": "", "MONOKUBE_RUN_DIR": ""}, "/file/data", "/file/run", false},
		{"empty config variable is unset", nil, map[string]string{"MONOKUBE_CONFIG": ""}, datadir.DefaultData, datadir.DefaultRun, false},
		{"a named config file must exist", nil, map[string]string{"MONOKUBE_CONFIG": missing}, datadir.DefaultData, datadir.DefaultRun, true},
	}
	for _, l := range locators() {
		for _, r := range rows {
			if len(r.args) > 0 && !l.hasFlags {
				continue
			}
			t.Run(l.command+"/"+r.name, func(t *testing.T) {
				for _, k := range []string{"MONOKUBE_CONFIG", "MONOKUBE_DATA_DIR", "MONOKUBE_RUN_DIR"} {
					t.Setenv(k, r.env[k])
					if _, ok := r.env[k]; !ok {
						os.Unsetenv(k)
					}
				}
				data, run, err := l.find(t, r.args)
				switch {
				case r.wantErr && !l.dataOnly:
					if err == nil {
						t.Errorf("no error; want one naming %s", missing)
					}
				case err != nil:
					t.Errorf("error %v", err)
				case data != r.data || (!l.dataOnly && run != r.run):
					t.Errorf("data %q run %q; want %q %q", data, run, r.data, r.run)
				}
			})
		}
	}
}

func locators() []locator {
	input := func(server bool) func(c *cli.Context) (string, string, error) {
		return func(c *cli.Context) (string, string, error) {
			if server {
				in, err := loadInput(c, "", config.DefaultServerInput())
				return in.DataDir, in.RunDir, err
			}
			in, err := loadInput(c, "", config.DefaultAgentInput())
			return in.DataDir, in.RunDir, err
		}
	}
	files := func(c *cli.Context) (string, string, error) {
		nf, err := nodeFiles(c, "")
		return nf.DataDir, nf.RunDir, err
	}
	ls := []locator{
		{command: "ctr, crictl", find: func(*testing.T, []string) (string, string, error) {
			l, err := nodeLayout()
			return l.Data, l.Run, err
		}},
		{command: "launcher", hasFlags: true, dataOnly: true, find: func(_ *testing.T, args []string) (string, string, error) {
			return launcher.ConfiguredDataDir(append([]string{"monokube", "server"}, args...), os.Environ()), "", nil
		}},
	}
	for _, c := range []struct {
		path []string
		find func(c *cli.Context) (string, string, error)
	}{
		{[]string{"server"}, input(true)},
		{[]string{"agent"}, input(false)},
		{[]string{"check-config"}, input(true)},
		{[]string{"install", "server"}, input(true)},
		{[]string{"install", "agent"}, input(false)},
		{[]string{"killall"}, files},
		{[]string{"uninstall"}, files},
		{[]string{"token", "create"}, files},
		{[]string{"token", "list"}, files},
		{[]string{"token", "delete"}, files},
		{[]string{"etcd", "members"}, files},
	} {
		ls = append(ls, locator{command: strings.Join(c.path, " "), hasFlags: true, find: appLocator(c.path, c.find)})
	}
	return ls
}

// appLocator runs the monokube command at path with find in place of its
// action, so the command's own flags and variables are parsed.
func appLocator(path []string, find func(*cli.Context) (string, string, error)) func(*testing.T, []string) (string, string, error) {
	return func(t *testing.T, args []string) (data, run string, err error) {
		app := newApp(os.Stderr, os.Stderr)
		cmd := findCommand(app.Commands, path)
		if cmd == nil {
			t.Fatalf("no command %q", path)
		}
		cmd.Action = func(c *cli.Context) error {
			data, run, err = find(c)
			return nil
		}
		if runErr := app.Run(slices.Concat([]string{"monokube"}, path, args)); runErr != nil {
			t.Fatalf("run %v: %v", path, runErr)
		}
		return data, run, err
	}
}

func findCommand(cmds []*cli.Command, path []string) *cli.Command {
	for _, c := range cmds {
		if c.Name != path[0] {
			continue
		}
		if len(path) == 1 {
			return c
		}
		return findCommand(c.Subcommands, path[1:])
	}
	return nil
}

// token's own action finds the server through the config file too.
func TestTokenFollowsTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	fromFile := filepath.Join(dir, "from-file")
	if err := os.WriteFile(file, []byte("data-dir: "+fromFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
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
