// Package addons renders the addon manifests monokube deploys by default
// (package manifests: CoreDNS, local-path storage, metrics-server) with the
// cluster's settings and keeps them in the manifests directory, where the
// deploy controller applies them. A disabled addon's file is removed, so the
// deploy controller deletes what it had applied.
package addons

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"text/template"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/manifests"
)

// Addons monokube wires up beyond their manifest, by the name --disable
// takes; manifests.Names lists them all.
const (
	CoreDNS       = "coredns"
	LocalStorage  = "local-storage"
	MetricsServer = "metrics-server"
)

// Images are the names of the embedded images the manifests run.
type Images struct {
	CoreDNS, LocalPath, MetricsServer, Busybox string
}

// Settings are what the manifests are rendered with.
type Settings struct {
	ClusterDNS      netip.Addr
	ClusterDomain   string
	StoragePath     string // where local-path keeps volumes on each node
	KubeletCA       string // PEM: the CAs kubelet serving certificates chain to
	MetricsCert     string // PEM: metrics-server's serving certificate
	MetricsKey      string // PEM: its key
	MetricsCABundle string // base64 of the PEM of the CA its APIService trusts
	Images          Images
}

// KubeletCAHash names the KubeletCA bundle in metrics-server's pod
// template: a change of it (a kubelet-serving CA rotation) rolls
// metrics-server, which reads the bundle when it starts.
func (s Settings) KubeletCAHash() string {
	sum := sha256.Sum256([]byte(s.KubeletCA))
	return hex.EncodeToString(sum[:8])
}

// Render returns addon name's manifest rendered with s.
func Render(name string, s Settings) ([]byte, error) {
	tmpl, err := template.New(name).Option("missingkey=error").ParseFS(manifests.FS(), name+".yaml")
	if err != nil {
		return nil, fmt.Errorf("addon %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name+".yaml", s); err != nil {
		return nil, fmt.Errorf("render addon %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// Sync writes each enabled addon's manifest into dir and removes each
// disabled one's. NAME.yaml.skip beside one leaves it alone either way: the
// user keeps their own edits and objects.
func Sync(dir string, s Settings, disabled []string, log *slog.Logger) error {
	off := map[string]bool{}
	for _, d := range disabled {
		off[d] = true
	}
	var errs []error
	for _, name := range manifests.Names() {
		file := filepath.Join(dir, name+".yaml")
		switch {
		case fsutil.Exists(file + ".skip"):
			log.Info("leaving addon alone: a .skip file is beside its manifest", "file", file, "disabled", off[name])
		case off[name]:
			errs = append(errs, remove(file, log))
		default:
			errs = append(errs, write(file, name, s))
		}
	}
	return errors.Join(errs...)
}

func write(file, name string, s Settings) error {
	data, err := Render(name, s)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := fsutil.WriteFile(file, data, 0o600); err != nil {
		return fmt.Errorf("write addon manifest: %w", err)
	}
	return nil
}

// remove deletes a disabled addon's manifest; the deploy controller then
// deletes its objects.
func remove(file string, log *slog.Logger) error {
	err := os.Remove(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove disabled addon: %w", err)
	}
	log.Info("addon disabled: removing it from the cluster", "file", file)
	return nil
}
