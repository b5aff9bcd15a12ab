package tiers

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/monokube/monokube/internal/"

// tier of every internal package, lowest first. A new package must be
// placed here; the test fails until it is.
var tier = map[string]int{ //nolint:gochecknoglobals // the table under test
	// machinery
	"assets": 0, "config": 0, "datadir": 0, "fsutil": 0, "lifecycle": 0, "log": 0, "nodewatch": 0,
	"pki": 0, "proc": 0, "snapshot": 0, "supervise": 0, "sysreq": 0, "systemd": 0, "testutil": 0, "version": 0, "tiers": 0,
	// components
	"addons": 1, "apilb": 1, "cni": 1, "containerd": 1, "control": 1, "deploy": 1, "etcd": 1, "flannel": 1,
	"identity": 1, "join": 1, "satoken": 1, "secretsenc": 1, "carotate": 1, "kubelet": 1, "kubeproxy": 1, "mirror": 1, "node": 1, "upgrade": 1,
	// node operations
	"install": 2, "killall": 2,
	// roles
	"agent": 3, "cli": 3, "launcher": 3, "server": 3,
}

var names = []string{"machinery", "components", "node operations", "roles"} //nolint:gochecknoglobals // the table under test

// No package imports from a tier above its own.
func TestNoUpwardImports(t *testing.T) {
	dirs, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		from, ok := tier[d.Name()]
		if !ok {
			t.Errorf("internal/%s has no tier: add it to the table in tiers_test.go", d.Name())
			continue
		}
		for imp, file := range imports(t, filepath.Join("..", d.Name())) {
			to, known := tier[imp]
			if known && to > from {
				t.Errorf("%s (%s) imports %s (%s) in %s: an upward arrow", d.Name(), names[from], imp, names[to], file)
			}
		}
	}
}

// imports maps each internal package dir's non-test files import to a file
// that imports it.
func imports(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, spec := range parsed.Imports {
			path, _ := strconv.Unquote(spec.Path.Value)
			if rest, ok := strings.CutPrefix(path, module); ok {
				out[strings.SplitN(rest, "/", 2)[0]] = f
			}
		}
	}
	return out
}
