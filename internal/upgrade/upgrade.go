// Package upgrade carries a node from one monokube version to the next by
// replacing the binary and restarting it: it records which versions last
// used the data dir, refuses version skew Kubernetes does not support,
// cordons and drains a node around a Kubernetes minor-version change (the
// kubelet restarts every container then anyway), and removes old
// versions' unpacked binaries once no process runs them.
package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	utilversion "k8s.io/apimachinery/pkg/util/version"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/version"
)

// Record is the versions that last ran on a data dir.
type Record struct {
	Monokube   string `json:"monokube"`
	Kubernetes string `json:"kubernetes"`
}

// Current is this binary's versions.
func Current() Record {
	i := version.Get()
	return Record{Monokube: i.Version, Kubernetes: i.Kubernetes}
}

// Load reads the record at path. A data dir that never became ready has
// none (zero): the record is written once every component is ready, so a
// first start killed early leaves no record and must not block the next.
// A record that exists but cannot be read is a refusal: skipping the
// version checks over data of unknown version is what they are there to
// prevent. The file is written atomically, so only a disk fault or a hand
// edit damages it.
func Load(path string) (Record, error) {
	var r Record
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r, nil
	case err != nil:
		return r, fmt.Errorf("read %s, the versions that last used this data dir: %w", path, err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		cur := Current()
		return r, fmt.Errorf("%s, the versions that last used this data dir, is damaged (%q): write into it the versions "+
			"of the monokube that last ran here (its `monokube --version` prints them), e.g. for this one "+
			"{\"monokube\": %q, \"kubernetes\": %q}, then start again", path, firstLine(data), cur.Monokube, cur.Kubernetes)
	}
	return r, nil
}

// firstLine is the start of data, for an error message.
func firstLine(data []byte) string {
	s, _, _ := strings.Cut(string(data), "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// Step is what starting cur over data last used by prev means.
type Step struct {
	Prev, Cur Record
	// MinorChange is set when the Kubernetes minor version goes up: the
	// node must be drained before its kubelet starts.
	MinorChange bool
}

// Check decides on starting cur over data last used by prev. It refuses a
// newer Kubernetes minor version (the data may hold what this one cannot
// read), and, for a server, skipping a minor version (Kubernetes upgrades
// control planes one minor version at a time).
func Check(prev, cur Record, server bool, dataDir string) (Step, error) {
	s := Step{Prev: prev, Cur: cur}
	if prev.Kubernetes == "" || prev.Kubernetes == cur.Kubernetes {
		return s, nil
	}
	p, err1 := utilversion.ParseGeneric(prev.Kubernetes)
	c, err2 := utilversion.ParseGeneric(cur.Kubernetes)
	if err1 != nil || err2 != nil {
		return s, nil // an unstamped development build: nothing to compare
	}
	pm, cm := int(p.Major())*1000+int(p.Minor()), int(c.Major())*1000+int(c.Minor())
	switch {
	case pm > cm:
		return s, fmt.Errorf("%s was last used by monokube %s with Kubernetes %s, and this monokube %s runs Kubernetes %s: "+
			"Kubernetes cannot go back a minor version over the same data; run monokube %s (or another release with Kubernetes %d.%d) again, or start afresh with another --data-dir",
			dataDir, prev.Monokube, prev.Kubernetes, cur.Monokube, cur.Kubernetes, prev.Monokube, p.Major(), p.Minor())
	case server && cm-pm > 1:
		return s, fmt.Errorf("%s was last used by Kubernetes %s and this monokube runs %s: a server upgrades one minor version at a time; "+
			"run a monokube release with Kubernetes %d.%d first", dataDir, prev.Kubernetes, cur.Kubernetes, p.Major(), p.Minor()+1)
	}
	s.MinorChange = pm < cm
	return s, nil
}

// RecordVersion returns the hook a node runs once all its components are
// ready: it records this version in the data dir (path is version.json),
// which the next start's skew check reads.
func RecordVersion(path string, log *slog.Logger) func() {
	return func() {
		if err := fsutil.SaveState(path, Current()); err != nil {
			log.Warn("could not record this version in the data dir", "file", path, "err", err)
		}
	}
}
