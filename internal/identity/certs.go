package identity

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
)

// authority is one certificate authority of the identity: where it lives
// and the common name it gets when it is made.
type authority struct {
	files pki.Files
	name  string
}

// authorities are the cluster's six CAs.
func authorities(c control.Creds) []authority {
	return []authority{
		{c.ServerCA, "monokube-server-ca"},
		{c.ClientCA, "monokube-client-ca"},
		{c.RequestHeaderCA, "monokube-request-header-ca"},
		{c.EtcdCA, "monokube-etcd-ca"},
		{c.KubeletServingCA, "monokube-kubelet-serving-ca"},
		{c.APIServiceCA, "monokube-apiservice-ca"},
	}
}

// issue says which leaves ensurePKI issues: those due for renewal under
// life at now or that no longer match the plan, and every leaf of the
// services force names.
type issue struct {
	life  pki.Lifetime
	now   time.Time
	force []string
}

// ensurePKI creates the six CAs once and every leaf certificate the control
// plane (and, if own is not nil, the server's own node) uses, keeping
// existing ones that still match (see pki.EnsureLeaf) unless is forces
// them, the bundle that verifies kubelets and the service-account key. It
// returns the CAs by their files and the leaves it issued.
func ensurePKI(cfg *config.Server, c control.Creds, own *NodeFiles, is issue, log *slog.Logger) (map[pki.Files]*pki.KeyPair, []pki.Files, error) {
	if err := markLegacyKubeletCA(c); err != nil {
		return nil, nil, err
	}
	cas, err := ensureCAs(c, is.now)
	if err != nil {
		return nil, nil, err
	}
	hostname, _ := os.Hostname() // best effort: only adds a SAN
	plan := leaves(cfg, c, hostname)
	if own != nil {
		plan = append(plan, nodeLeaves(cfg, c, *own)...)
	}
	var issued []pki.Files
	for _, l := range plan {
		ok, err := ensureLeaf(l, cas[l.ca], is)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %s: %w", filepath.Base(string(l.files)), err)
		}
		if ok {
			log.Info("issued certificate", "file", l.files.Cert(), "service", l.service)
			issued = append(issued, l.files)
		}
	}
	if err := writeKubeletCABundle(c, cas); err != nil {
		return nil, nil, err
	}
	if err := writeSigners(c, cas); err != nil {
		return nil, nil, err
	}
	if err := chainLeaves(c, plan); err != nil {
		return nil, nil, err
	}
	if err := pki.EnsureSigningKey(c.ServiceKey, c.ServicePub); err != nil {
		return nil, nil, err
	}
	return cas, issued, nil
}

// ensureLeaf issues l anew if is forces its service, or else if it is
// missing, due or no longer matches (pki.EnsureLeaf). It reports whether
// it issued.
func ensureLeaf(l leaf, ca *pki.KeyPair, is issue) (bool, error) {
	if !slices.Contains(is.force, l.service) {
		return pki.EnsureLeaf(l.files, ca, l.spec, is.life, is.now)
	}
	kp, err := ca.SignFor(l.spec, is.now, is.life.Validity)
	if err != nil {
		return false, err
	}
	return true, pki.Write(l.files, kp)
}

// ensureCAs loads each CA, or makes it if it is missing, named after now.
func ensureCAs(c control.Creds, now time.Time) (map[pki.Files]*pki.KeyPair, error) {
	cas := map[pki.Files]*pki.KeyPair{}
	for _, a := range authorities(c) {
		if err := settleCA(a.files); err != nil {
			return nil, err
		}
		kp, err := pki.EnsureCA(a.files, fmt.Sprintf("%s@%d", a.name, now.Unix()), now)
		if err != nil {
			return nil, fmt.Errorf("certificate authority %s: %w", filepath.Base(string(a.files)), err)
		}
		cas[a.files] = kp
	}
	return cas, nil
}

// legacyKubeletCA marks a cluster made by a version that signed kubelet
// serving certificates with the server CA: kubelets keep trusting those
// until they renew them from the kubelet-serving CA.
func legacyKubeletCA(c control.Creds) string { return string(c.KubeletServingCA) + ".legacy" }

// markLegacyKubeletCA records, before the kubelet-serving CA is first
// made over an existing server CA, that agents' current serving
// certificates come from the server CA.
func markLegacyKubeletCA(c control.Creds) error {
	if fsutil.Exists(c.KubeletServingCA.Cert()) || !fsutil.Exists(c.ServerCA.Cert()) {
		return nil
	}
	note := "Kubelet serving certificates issued before monokube had a kubelet-serving CA are signed by the server CA;\n" +
		"kube-apiserver and metrics-server keep trusting them (kubelet-ca-bundle.crt) while this file exists.\n"
	return fsutil.WriteFile(legacyKubeletCA(c), []byte(note), 0o600)
}

// chainLeaves makes each serving certificate of the plan that the server
// or kubelet-serving CA signs, and every certificate the etcd CA signs,
// the leaf followed by its CA's ServingChain: the old CA's certificate of
// the new one while a rotation has switched to it and not retired the
// old, the leaf alone otherwise. etcd's leaves keep that chain after the
// retirement, until they are issued again: etcd members and apiservers
// that have not restarted since still trust only the old CA. The servers
// reload the files.
func chainLeaves(c control.Creds, plan []leaf) error {
	for _, l := range plan {
		serving := (l.ca == c.ServerCA || l.ca == c.KubeletServingCA) && slices.Equal(l.spec.Usages, pki.ServerUsage)
		if !serving && l.ca != c.EtcdCA {
			continue
		}
		bundle, err := PublishedBundle(l.ca)
		if err != nil {
			return err
		}
		chain := ServingChain(bundle)
		if chain == nil && l.ca == c.EtcdCA {
			continue
		}
		kp, err := pki.Load(l.files)
		if err != nil {
			return err
		}
		want := append(pki.CertPEM(kp.Cert), chain...)
		if have, err := os.ReadFile(l.files.Cert()); err == nil && bytes.Equal(have, want) {
			continue
		}
		if err := fsutil.WriteFile(l.files.Cert(), want, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeSigners writes the certificates of the CAs that the controller-
// manager signs CSRs with, each alone (control.Creds.ClientSigner), when
// they changed: the signer reloads them, with the CA's key, on a change.
func writeSigners(c control.Creds, cas map[pki.Files]*pki.KeyPair) error {
	for file, ca := range map[string]pki.Files{c.ClientSigner: c.ClientCA, c.KubeletServingSigner: c.KubeletServingCA} {
		data := pki.CertPEM(cas[ca].Cert)
		if have, err := os.ReadFile(file); err == nil && bytes.Equal(have, data) {
			continue
		}
		if err := fsutil.WriteFile(file, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeKubeletCABundle writes the CAs that kubelet serving certificates
// may chain to: the kubelet-serving CA's file (both CAs during a
// rotation), and the server CA only on a cluster marked legacy.
func writeKubeletCABundle(c control.Creds, cas map[pki.Files]*pki.KeyPair) error {
	bundle, err := os.ReadFile(c.KubeletServingCA.Cert())
	if err != nil {
		return err
	}
	if fsutil.Exists(legacyKubeletCA(c)) {
		bundle = append(bundle, pki.CertPEM(cas[c.ServerCA].Cert)...)
	}
	return fsutil.WriteFile(c.KubeletCABundle, bundle, 0o644)
}
