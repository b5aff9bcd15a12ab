// Package version reports which monokube build is running and which
// Kubernetes and etcd releases it embeds.
//
// The values are stamped at link time by the Makefile with -ldflags -X, which
// only works on package-level string variables; they are never written at run
// time.
package version

import (
	"fmt"
	"runtime"
	"strings"

	etcdversion "go.etcd.io/etcd/api/v3/version"
	k8sversion "k8s.io/component-base/version"
)

// Stamped by the Makefile; the defaults mark an unstamped (go run / go test) build.
//
//nolint:gochecknoglobals // -ldflags -X needs package variables.
var (
	version = "dev"
	commit  = "unknown"
)

// Info describes this build.
type Info struct {
	Version    string // monokube release, e.g. 0.1.0
	Commit     string // monokube git commit
	Kubernetes string // embedded Kubernetes release, e.g. v1.37.2
	Etcd       string
	Go         string
}

// Get returns the stamped build information.
func Get() Info {
	return Info{
		Version:    version,
		Commit:     commit,
		Kubernetes: KubernetesRelease(),
		Etcd:       etcdversion.Version,
		Go:         runtime.Version(),
	}
}

// KubernetesRelease is the Kubernetes release without monokube's build
// metadata: "v1.37.2" for a gitVersion of "v1.37.2+monokube.0.1.0".
func KubernetesRelease() string {
	v, _, _ := strings.Cut(k8sversion.Get().GitVersion, "+")
	return v
}

// String is the multi-line text `monokube --version` prints.
func (i Info) String() string {
	return fmt.Sprintf("monokube %s (commit %s)\nkubernetes %s\netcd %s\ngo %s\n",
		i.Version, i.Commit, i.Kubernetes, i.Etcd, i.Go)
}
