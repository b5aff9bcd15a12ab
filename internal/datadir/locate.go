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
// answers through Locate, so they cannot disagree.
type Told struct {
	// Flag returns a flag's value and whether the command line gave it;
	// nil for a command that takes none of monokube's flags (ctr, crictl).
	Flag   func(name string) (string, bool)
	Getenv func(key string) string
	// Root is prefixed to the config file's path when it is read: the
	// staging root of install --root, else "".
	Root string
}

// Location is where the node keeps its state and the config file that
// said so.
type Location struct {
	Layout
	Config string // the config file's path (read under Told.Root)
	Named  bool   // the user named Config, so it must exist
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

// Locate applies the one rule: for the data dir and the run dir, the flag,
// then $MONOKUBE_DATA_DIR / $MONOKUBE_RUN_DIR, then data-dir / run-dir in
// the config file, then the defaults. An empty flag or variable counts as
// not given (MONOKUBE_DATA_DIR= in a unit's environment). A config file the
// user named must exist; one that cannot be read or parsed is an error, and
// the Location returned with it is what the rule gives without the file.
func Locate(t Told) (Location, error) {
	loc := Location{}
	loc.Config, loc.Named = t.ConfigFile()
	file, err := readDirs(t.Root+loc.Config, loc.Named)
	loc.Data = t.pick("data-dir", file.DataDir, DefaultData)
	loc.Run = t.pick("run-dir", file.RunDir, DefaultRun)
	return loc, err
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

// fileDirs are the config file's keys Locate reads; the roles' own
// decoders check the rest of the file.
type fileDirs struct {
	DataDir string `yaml:"data-dir"`
	RunDir  string `yaml:"run-dir"`
}

func readDirs(path string, named bool) (fileDirs, error) {
	var d fileDirs
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !named {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("read config file: %w; create it or drop --config", err)
	}
	if err := yaml.Unmarshal(data, &d); err != nil {
		return fileDirs{}, fmt.Errorf("config file %s: %w", path, err)
	}
	return d, nil
}
