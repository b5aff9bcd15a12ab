package identity

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
)

// bundleVersion is the format of an encoded Bundle.
const bundleVersion = 1

// Bundle is the identity proper as one value: the files that every server
// of a cluster must hold alike (each CA's pair, the service-account key
// pair, the encryption config), keyed by their path under the data dir.
// A joining server takes it from the cluster; a snapshot keeps it beside
// etcd's data.
type Bundle struct {
	Version int               `json:"version"`
	Files   map[string][]byte `json:"files"`
}

// Bundle reads the identity proper back from disk, as Init or Load found
// it complete.
func (id *Identity) Bundle() (Bundle, error) {
	b := Bundle{Version: bundleVersion, Files: map[string][]byte{}}
	for _, rel := range bundlePaths(id.layout) {
		data, err := os.ReadFile(filepath.Join(id.layout.Data, rel))
		if err != nil {
			return Bundle{}, fmt.Errorf("read the cluster identity: %w", err)
		}
		b.Files[rel] = data
	}
	for _, rel := range optionalBundlePaths(id.layout) {
		data, err := os.ReadFile(filepath.Join(id.layout.Data, rel))
		switch {
		case err == nil:
			b.Files[rel] = data
		case !os.IsNotExist(err):
			return Bundle{}, fmt.Errorf("read the cluster identity: %w", err)
		}
	}
	return b, nil
}

// Encode renders b for a Secret or a file.
func (b Bundle) Encode() ([]byte, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode the cluster identity: %w", err)
	}
	return data, nil
}

// DecodeBundle reads what Encode wrote and checks it is a whole identity
// that l can hold: every file of it and no other, each CA a certificate
// with its own key.
func DecodeBundle(data []byte, l datadir.Layout) (Bundle, error) {
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return Bundle{}, fmt.Errorf("the cluster identity is not readable: %w", err)
	}
	if b.Version != bundleVersion {
		return Bundle{}, fmt.Errorf("the cluster identity is of format %d, this monokube reads %d: use the cluster's monokube version to join", b.Version, bundleVersion)
	}
	want := bundlePaths(l)
	var missing, extra []string
	for _, p := range want {
		if len(b.Files[p]) == 0 {
			missing = append(missing, p)
		}
	}
	optional := optionalBundlePaths(l)
	for p := range b.Files {
		if !slices.Contains(want, p) && !slices.Contains(optional, p) {
			extra = append(extra, p)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		slices.Sort(extra)
		return Bundle{}, fmt.Errorf("the cluster identity is not whole (missing: %s; unknown: %s): the cluster runs another monokube version, or the data was damaged",
			orNone(missing), orNone(extra))
	}
	for _, a := range authorities(control.NewCreds(l)) {
		kp, err := pki.Parse(b.Files[rel(l, a.files.Cert())], b.Files[rel(l, a.files.Key())], a.files)
		if err != nil {
			return Bundle{}, fmt.Errorf("the cluster identity holds a bad certificate authority: %w", err)
		}
		if !kp.Cert.IsCA {
			return Bundle{}, fmt.Errorf("the cluster identity's %s is not a CA certificate", a.files.Cert())
		}
	}
	return b, nil
}

// Write puts b's files on l, where Init and Load read them, each written
// whole (fsutil.WriteFile). A file that is there already must be b's own,
// byte for byte: a server joining again after an interrupted join finds
// what it wrote, but never mixes two clusters' keys in one data dir. It
// checks every file before it writes one.
func (b Bundle) Write(l datadir.Layout) error {
	var differ []string
	for p, data := range b.Files {
		have, err := os.ReadFile(filepath.Join(l.Data, p))
		switch {
		case err == nil && !bytes.Equal(have, data):
			differ = append(differ, p)
		case err != nil && !os.IsNotExist(err):
			return fmt.Errorf("check %s before taking the cluster identity: %w", p, err)
		}
	}
	if len(differ) > 0 {
		slices.Sort(differ)
		return fmt.Errorf("%s holds keys of another cluster (%s differ from the cluster's): a server joins with a data dir of its own; move %s away to join this cluster",
			l.Data, strings.Join(differ, ", "), l.Server())
	}
	for p, data := range b.Files {
		mode := os.FileMode(0o600)
		if strings.HasSuffix(p, ".crt") || strings.HasSuffix(p, ".pub") {
			mode = 0o644
		}
		if err := fsutil.WriteFile(filepath.Join(l.Data, p), data, mode); err != nil {
			return fmt.Errorf("take the cluster identity: %w", err)
		}
	}
	return nil
}

// bundlePaths are the identity's files, relative to l's data dir.
func bundlePaths(l datadir.Layout) []string {
	var out []string
	for _, f := range identityFiles(control.NewCreds(l)) {
		out = append(out, rel(l, f))
	}
	return out
}

// rel is path relative to l's data dir.
func rel(l datadir.Layout, path string) string {
	r, _ := filepath.Rel(l.Data, path) // cannot fail: path is filepath.Join(l.Data, …)
	return filepath.ToSlash(r)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// EtcdClientTLS is a client TLS config for the cluster's etcd made from b
// alone, in memory: a client certificate signed by b's etcd CA and never
// written. A joining server asks etcd about its members with it before it
// writes anything.
func (b Bundle) EtcdClientTLS(l datadir.Layout, now time.Time) (*tls.Config, error) {
	f := control.NewCreds(l).EtcdCA
	ca, err := pki.Parse(b.Files[rel(l, f.Cert())], b.Files[rel(l, f.Key())], f)
	if err != nil {
		return nil, fmt.Errorf("the cluster's etcd CA: %w", err)
	}
	leaf, err := ca.Sign(pki.Spec{CommonName: "monokube-join-check", Usages: pki.ClientUsage}, now)
	if err != nil {
		return nil, err
	}
	// During a rotation of the etcd CA the members verify the new CA's
	// certificates through the old CA's certificate of it (chainLeaves).
	bundle := b.Files[rel(l, f.Cert())]
	chain := [][]byte{leaf.Cert.Raw}
	for _, c := range parsedChain(ServingChain(append(slices.Clone(bundle), b.Files[rel(l, crossCert(f))]...))) {
		chain = append(chain, c.Raw)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: leaf.Key, Leaf: leaf.Cert}},
		RootCAs:      roots, MinVersion: tls.VersionTLS12,
	}, nil
}

// parsedChain is the certificates of a ServingChain, none if it is
// empty.
func parsedChain(data []byte) []*x509.Certificate {
	certs, _ := pki.ParseBundle(data) // ServingChain's output: one parsed certificate or nothing
	return certs
}
