package upgrade

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/fsutil"
)

func TestCheck(t *testing.T) {
	cur := Record{Monokube: "0.2.0", Kubernetes: "v1.37.2"}
	for _, c := range []struct {
		name   string
		prev   string
		server bool
		minor  bool
		err    string
	}{
		{"fresh data dir", "", true, false, ""},
		{"same version", "v1.37.2", true, false, ""},
		{"patch upgrade keeps containers", "v1.37.0", true, false, ""},
		{"patch downgrade is allowed", "v1.37.5", false, false, ""},
		{"minor upgrade drains", "v1.36.4", true, true, ""},
		{"agent may skip minors", "v1.34.1", false, true, ""},
		{"server may not skip a minor", "v1.35.3", true, false, "one minor version at a time"},
		{"newer minor refused", "v1.38.0", true, false, "cannot go back a minor version"},
		{"newer minor refused on agents too", "v1.38.1", false, false, "cannot go back a minor version"},
		{"unstamped build compares nothing", "garbage", true, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			step, err := Check(Record{Monokube: "0.1.0", Kubernetes: c.prev}, cur, c.server, "/data")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				if !strings.Contains(err.Error(), "/data") {
					t.Errorf("message does not name the data dir: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if step.MinorChange != c.minor {
				t.Errorf("MinorChange = %v, want %v", step.MinorChange, c.minor)
			}
		})
	}
}

// A missing record is a data dir that never became ready; a damaged one is
// a refusal that says what to write, never a silent "never ran".
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "version.json")
	if r, err := Load(path); err != nil || r != (Record{}) {
		t.Errorf("Load of a missing record = %+v, %v; want zero, nil", r, err)
	}
	want := Record{Monokube: "0.1.0", Kubernetes: "v1.36.4"}
	if err := fsutil.SaveState(path, want); err != nil {
		t.Fatal(err)
	}
	if r, err := Load(path); err != nil || r != want {
		t.Errorf("Load = %+v, %v; want %+v", r, err, want)
	}
	if err := os.WriteFile(path, []byte(`{"monokube": "0.1`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), `"kubernetes": `) {
		t.Errorf("Load of a truncated record = %v, want a refusal saying what to write", err)
	}
}
