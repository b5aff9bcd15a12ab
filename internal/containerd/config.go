// Package containerd runs containerd for a node: it renders containerd's
// config from plain data, runs containerd's own command in-process for the
// hidden `monokube containerd` subcommand, supervises that child process
// and imports the node's images into it.
package containerd

import (
	"bytes"
	"fmt"
	"strconv"
	"text/template"
)

// Namespace is the containerd namespace the CRI plugin (and so the
// kubelet) uses.
const Namespace = "k8s.io"

// Config is everything containerd's config file says, as plain data.
type Config struct {
	Root    string // persistent state: content store, snapshots
	State   string // runtime state, under the run dir
	Address string // gRPC socket

	RuncBinary string // runc, from the extracted helper binaries
	RuncRoot   string // runc's state (upstream default /run/containerd/runc)
	CNIBinDir  string
	CNIConfDir string
	OptDir     string // containerd's "opt" plugin directory

	SandboxImage string // the embedded pause image
	Snapshotter  string // overlayfs, or native where overlayfs is missing
	// RegistryHosts is the directory of registry hosts configuration
	// (config_path: a hosts.toml per registry) when the embedded registry
	// mirror writes one; empty leaves containerd's default, the host's
	// /etc/containerd/certs.d.
	RegistryHosts string

	// RestrictOOMScoreAdj keeps containers' oom_score_adj at or above
	// containerd's own, for hosts without CAP_SYS_RESOURCE.
	RestrictOOMScoreAdj bool
	SystemdCgroup       bool // the cgroup driver, matching the kubelet's
	Debug               bool
}

// Render returns containerd's config.toml (version 3) for c.
func Render(c Config) ([]byte, error) {
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("render containerd config: %w", err)
	}
	return b.Bytes(), nil
}

var configTemplate = template.Must( //nolint:gochecknoglobals // parsed once, read-only
	template.New("config.toml").
		Funcs(template.FuncMap{"q": strconv.Quote}).Parse(`# Written by monokube at every start; edits are lost.
version = 3
root = {{q .Root}}
state = {{q .State}}

[grpc]
  address = {{q .Address}}

[debug]
  format = "json"
  level = {{if .Debug}}"debug"{{else}}"info"{{end}}

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {{q .OptDir}}

  # NRI listens on a fixed path (/var/run/nri); monokube does not use it.
  [plugins."io.containerd.nri.v1.nri"]
    disable = true

  [plugins."io.containerd.cri.v1.images"]
    snapshotter = {{q .Snapshotter}}
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = {{q .SandboxImage}}
{{- if .RegistryHosts}}
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = {{q .RegistryHosts}}
{{- end}}

  [plugins."io.containerd.cri.v1.runtime"]
    restrict_oom_score_adj = {{.RestrictOOMScoreAdj}}
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = [{{q .CNIBinDir}}]
      conf_dir = {{q .CNIConfDir}}
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        snapshotter = {{q .Snapshotter}}
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          BinaryName = {{q .RuncBinary}}
          Root = {{q .RuncRoot}}
          SystemdCgroup = {{.SystemdCgroup}}
`))
