package launcher

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/monokube/monokube/internal/datadir"
)

// DataDir finds where to keep the real binary: the data dir it will use,
// by datadir.Locate's rule, with the flags read from args. When that cannot
// be written (an unprivileged `monokube
// kubectl`, or a data dir the real binary will refuse with a clear message)
// it falls back to the user's cache dir, then to a private directory in
// $TMPDIR.
func DataDir(args, env []string) (string, error) {
	dir := ConfiguredDataDir(args, env)
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

// ConfiguredDataDir is the data dir the real binary will use, before the
// fallbacks DataDir adds. A config file that cannot be read (an
// unprivileged user, a typo) is the real binary's to report in full; the
// launcher unpacks where the rule says without it.
func ConfiguredDataDir(args, env []string) string {
	l, _ := datadir.Locate(datadir.Told{
		Flag:   func(name string) (string, bool) { return flagValue(args, name) },
		Getenv: func(key string) string { return lookupEnv(env, key) },
	})
	return l.Data
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
