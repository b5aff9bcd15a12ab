package deploy

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A manifest whose entry is there but cannot be read is left alone (its
// objects are not deleted as if the file were gone); a .skip one too.
func TestScanKeepsUnreadableManifests(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte("kind: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing-target.yaml"), filepath.Join(dir, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"mine.yaml", "mine.yaml.skip"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := &Controller{dir: dir, log: slog.New(slog.DiscardHandler)}
	files, skipped, err := c.scan()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files["ok.yaml"] == nil {
		t.Errorf("files = %v, want only ok.yaml", files)
	}
	if !skipped["dangling.yaml"] || !skipped["mine.yaml"] {
		t.Errorf("skipped = %v, want the unreadable and the .skip manifests", skipped)
	}
}
