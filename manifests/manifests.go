// Package manifests embeds the addon manifests monokube deploys by default
// (CoreDNS, local-path storage, metrics-server) as text/template files;
// internal/addons renders them with the cluster's settings.
package manifests

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed *.yaml
var files embed.FS

// FS holds NAME.yaml for each addon.
func FS() fs.FS { return files }

// Names lists the addons, NAME for each NAME.yaml, in name order: the
// names --disable takes.
func Names() []string {
	matches, err := fs.Glob(files, "*.yaml")
	if err != nil {
		// fs.Glob fails only for a malformed pattern, and this one is valid.
		panic("manifests: " + err.Error())
	}
	names := make([]string, len(matches))
	for i, m := range matches {
		names[i] = strings.TrimSuffix(m, ".yaml")
	}
	return names
}
