package launcher

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Defaults, as in package config (which the launcher does not link).
const (
	defaultDataDir = "/var/lib/monokube"
	defaultConfig  = "/etc/monokube/config.yaml"
)

// DataDir finds where to keep the real binary: the data dir it will use
// (--data-dir on the command line, then $MONOKUBE_DATA_DIR, then data-dir in
// the config file named by --config or $MONOKUBE_CONFIG or the default, then
// the default). When that cannot be written (an unprivileged `monokube
// kubectl`, or a data dir the real binary will refuse with a clear message)
// it falls back to the user's cache dir, then to a private directory in
// $TMPDIR.
func DataDir(args, env []string) (string, error) {
	dir, err := configuredDataDir(args, env)
	if err != nil {
		return "", err
	}
	if writable(dir) {
		return dir, nil
	}
	if os.Geteuid() != 0 {
		if cache, err := os.UserCacheDir(); err == nil && writable(filepath.Join(cache, "monokube")) {
			return filepath.Join(cache, "monokube"), nil
		}
	}
	return privateTemp()
}

// privateTemp returns $TMPDIR/monokube-<uid>, a directory only this user
// can write, refusing one that someone else made.
func privateTemp() (string, error) {
	uid := os.Geteuid()
	dir := filepath.Join(os.TempDir(), "monokube-"+strconv.Itoa(uid))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("no writable place to unpack monokube (data dir, cache, %s): %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is not a private directory of this user: remove it, or give a writable --data-dir", dir)
	}
	return dir, nil
}

func configuredDataDir(args, env []string) (string, error) {
	if v, ok := flagValue(args, "data-dir"); ok {
		return v, nil
	}
	if v := lookupEnv(env, "MONOKUBE_DATA_DIR"); v != "" {
		return v, nil
	}
	file, explicit := flagValue(args, "config")
	if !explicit {
		file = lookupEnv(env, "MONOKUBE_CONFIG")
		explicit = file != ""
	}
	if !explicit {
		file = defaultConfig
	}
	v, err := configDataDir(file)
	if err != nil {
		return "", err
	}
	if v != "" {
		return v, nil
	}
	return defaultDataDir, nil
}

// flagValue finds --name=value or --name value (also with one dash) in
// args, stopping at "--".
func flagValue(args []string, name string) (string, bool) {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		trimmed := strings.TrimLeft(a, "-")
		if len(trimmed) == len(a) || len(a)-len(trimmed) > 2 {
			continue
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return v, true
		}
		if trimmed == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// configDataDir reads the data-dir key of a config file; a missing file has
// none. Any other problem is left for the real binary to report in full.
func configDataDir(file string) (string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read config file: %w", err)
	}
	var c struct {
		DataDir string `yaml:"data-dir"`
	}
	_ = yaml.Unmarshal(data, &c) // malformed: the real binary says where
	return c.DataDir, nil
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// writable reports whether dir exists and is writable, or can be created.
func writable(dir string) bool {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}
