// Package manifests will hold the addon manifests (CoreDNS, local-path
// storage, metrics-server) that monokube applies, embedded with go:embed
// because go:embed cannot reach outside a package's directory. No addon ships
// with the control-plane-only build yet.
package manifests
