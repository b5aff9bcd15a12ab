package mirror

import (
	"bytes"
	"fmt"
	"strconv"
	"text/template"

	"github.com/monokube/monokube/internal/config"
)

// Hosts is how a node's containerd reaches the mirrors: for each registry
// of Registries it asks Peers in order, then the registry itself.
type Hosts struct {
	// Registries are the registries whose pulls go to the peers first, as
	// host[:port]; "*" stands for every registry not listed.
	Registries []string
	// Peers are the mirrors to ask, host:port, this node's own first.
	Peers []string
	// CA verifies the peers' serving certificates (kubelet serving
	// certificates); ClientCert and ClientKey are this node's kubelet
	// client certificate, which the peers want (the same file twice when
	// it holds both, as the kubelet's rotated one does: containerd then
	// takes the key from it; a key path of "" would be its directory).
	CA, ClientCert, ClientKey string
}

// dialTimeout is how long containerd waits for a peer's connection
// before it asks the next: a node that is down must not hold a pull.
const dialTimeout = "500ms"

// RenderHosts renders containerd's registry hosts configuration for h:
// a hosts.toml per registry directory (config_path's layout, "_default"
// for "*"), keyed by directory name. containerd reads the directory of
// the registry if there is one, else _default, so every directory lists
// the peers.
func RenderHosts(h Hosts) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, r := range h.Registries {
		dir, server, err := registryDir(r)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := hostsTemplate.Execute(&b, struct {
			Hosts
			Server string
		}{h, server}); err != nil {
			return nil, fmt.Errorf("render hosts.toml of %s: %w", r, err)
		}
		out[dir] = b.Bytes()
	}
	return out, nil
}

// registryDir is the directory of registry r under config_path and the
// upstream server its hosts.toml names ("" for _default: the image's own
// registry).
func registryDir(r string) (dir, server string, err error) {
	if err := config.CheckRegistry(r); err != nil {
		return "", "", err
	}
	switch r {
	case "*":
		return "_default", "", nil
	case "docker.io":
		return r, "https://registry-1.docker.io", nil
	}
	return r, "https://" + r, nil
}

var hostsTemplate = template.Must(template.New("hosts.toml").Funcs(template.FuncMap{ //nolint:gochecknoglobals // parsed once, read-only
	"q": strconv.Quote, "same": func(a, b string) bool { return a == b },
}).Parse(hostsHeader + `; edits are lost.
{{if .Server}}server = {{q .Server}}
{{end}}{{range .Peers}}
[host.{{q (print "https://" .)}}]
  capabilities = ["pull", "resolve"]
  ca = {{q $.CA}}
  client = {{if same $.ClientCert $.ClientKey}}{{q $.ClientCert}}{{else}}[[{{q $.ClientCert}}, {{q $.ClientKey}}]]{{end}}
  dial_timeout = {{q "` + dialTimeout + `"}}
{{end}}`))
