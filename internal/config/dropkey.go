package config

import (
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/monokube/monokube/internal/fsutil"
)

// DropKey removes key from the config file at path, keeping the rest of
// the file (comments included) as it is. It reports whether the key was
// there; a missing file holds no key.
func DropKey(path, key string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return false, fmt.Errorf("config file %s: %s", path, newFileError(path, err).Msg)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return false, nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			continue
		}
		m.Content = append(m.Content[:i], m.Content[i+2:]...)
		out, err := yaml.Marshal(&doc)
		if err != nil {
			return false, fmt.Errorf("render config file %s: %w", path, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return false, err
		}
		return true, fsutil.WriteFile(path, out, fi.Mode().Perm())
	}
	return false, nil
}
