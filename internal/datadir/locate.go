package datadir

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Where a node keeps its state when nothing says otherwise.
const (
	DefaultData   = "/var/lib/monokube"
	DefaultRun    = "/run/monokube"
	DefaultConfig = "/etc/monokube/config.yaml"
)

// Told is what a command was told about where the node is: the flags on
// its command line and its environment. Every command that finds the node
// (server, agent, the launcher, killall, uninstall, token, ctr, crictl, …)
// answers through Resolve (Locate when it reads no other key of the
// config file), so they cannot disagree.
type Told struct {
	// Flag returns a flag's value and whether the command line gave it;
	// nil for a command that takes none of monokube's flags (ctr, crictl).
	Flag   func(name string) (string, bool)
	Getenv func(key string) string
	// Root is prefixed to the config file's path when it is read: the
	// staging root of install --root, else "".
	Root string
}

// EnvVar is the environment variable that stands for the flag name:
// MONOKUBE_ and the name in capitals, with _ for -.
func EnvVar(flag string) string {
	return "MONOKUBE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ConfigFile is the config file a command reads: --config, then
// $MONOKUBE_CONFIG, then DefaultConfig; named reports whether the user
// gave it.
func (t Told) ConfigFile() (path string, named bool) {
	if v, ok := t.given("config"); ok {
		return v, true
	}
	return DefaultConfig, false
}

// Locate applies the one rule, reading the config file itself (for the
// launcher, ctr and crictl; the roles decode the whole file and call
// Resolve). A config file the user named must exist; one that cannot be
// read or parsed is an error, and the Layout returned with it is what the
// rule gives without the file.
func Locate(t Told) (Layout, error) {
	path, named := t.ConfigFile()
	var file struct {
		Data string `yaml:"data-dir"`
		Run  string `yaml:"run-dir"`
	}
	data, err := ReadConfig(t.Root+path, named)
	if err == nil && data != nil {
		if err = yaml.Unmarshal(data, &file); err != nil {
			err = fmt.Errorf("config file %s: %w", t.Root+path, err)
		}
	}
	if err != nil {
		return t.Resolve(Layout{}), err
	}
	return t.Resolve(Layout{Data: file.Data, Run: file.Run}), nil
}

// Resolve is the one rule, given the data-dir and run-dir keys of the
// config file (empty where it has none): for each dir, the flag, then
// $MONOKUBE_DATA_DIR / $MONOKUBE_RUN_DIR, then the file, then the default.
// An empty flag or variable counts as not given (MONOKUBE_DATA_DIR= in a
// unit's environment).
func (t Told) Resolve(fromFile Layout) Layout {
	return Layout{
		Data: t.pick("data-dir", fromFile.Data, DefaultData),
		Run:  t.pick("run-dir", fromFile.Run, DefaultRun),
	}
}

// ReadConfig reads the config file at path: nil for a missing file the
// user did not name (--config or $MONOKUBE_CONFIG).
func ReadConfig(path string, named bool) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !named {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config file: %w; create it or drop --config", err)
	}
	return data, nil
}

// given is a non-empty value of the flag, else of its variable.
func (t Told) given(name string) (string, bool) {
	if t.Flag != nil {
		if v, ok := t.Flag(name); ok && v != "" {
			return v, true
		}
	}
	if v := t.Getenv(EnvVar(name)); v != "" {
		return v, true
	}
	return "", false
}

func (t Told) pick(name, fromFile, def string) string {
	if v, ok := t.given(name); ok {
		return v
	}
	if fromFile != "" {
		return fromFile
	}
	return def
}
