package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	certutil "k8s.io/client-go/util/cert"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/pki"
)

// publishedOr is the PublishedBundle of f, or ca's certificate alone if
// it cannot be read.
func publishedOr(f pki.Files, ca *pki.KeyPair) []byte {
	if data, err := PublishedBundle(f); err == nil {
		return data
	}
	return pki.CertPEM(ca.Cert)
}

// The keys of the encoded settings: the data of the settings ConfigMap
// (join.SettingsConfigMap) and the "settings" of an agent's cluster.json.
// Servers and agents of different versions read each other's: never
// rename one.
const (
	keyClusterCIDR   = "cluster-cidr"
	keyServiceCIDR   = "service-cidr"
	keyClusterDNS    = "cluster-dns"
	keyClusterDomain = "cluster-domain"
	keyClientCA      = "client-ca.crt"
	// The CAs that sign the apiservers' and the kubelets' serving
	// certificates, both during a CA rotation: agents follow them (a
	// server from before they were published has none).
	keyServerCA         = "server-ca.crt"
	keyKubeletServingCA = "kubelet-serving-ca.crt"
	// Server-wide choices, published for joining servers to compare (a
	// server from before they were published has none).
	keyFlannelBackend = "flannel-backend"
	keyDisable        = "disable"
	// The registries the nodes' embedded mirror serves, or noneDisabled
	// when it is off (a server from before it has none: off).
	keyEmbeddedRegistry = "embedded-registry"
)

// noneDisabled is the encoded Disabled of a cluster that disables no addon.
const noneDisabled = "none"

// ClusterSettings are what a joining node learns of the cluster besides
// the server's address and CA: a server publishes them (Encode, in the
// join manifest), an agent decodes them when it joins and keeps them in
// its cluster.json (as JSON, in the same encoding).
type ClusterSettings struct {
	ClusterCIDR   netip.Prefix
	ServiceCIDR   netip.Prefix
	ClusterDNS    netip.Addr
	ClusterDomain string
	ClientCA      []byte // PEM of the CA of client certificates, which kubelets trust
	// ServerCA and KubeletServingCA are the PEM bundles of the CAs of the
	// apiservers' and the kubelets' serving certificates, the one that
	// signs first; nil when the publisher predates them.
	ServerCA         []byte
	KubeletServingCA []byte
	// FlannelBackend and Disabled (sorted; empty, not nil, for none) are
	// the servers' pod network and left-out addons: every server must
	// agree, or they undo each other. Zero when the publisher predates
	// them.
	FlannelBackend string
	Disabled       []string
	// EmbeddedRegistry are the registries whose pulls every node asks the
	// nodes' mirrors for first (config.Server's); empty, not nil, when the
	// mirror is off, and nil when the publisher predates it (off too).
	EmbeddedRegistry []string
}

var (
	_ json.Marshaler   = ClusterSettings{}
	_ json.Unmarshaler = (*ClusterSettings)(nil)
)

// Settings are the cluster settings a server started with cfg publishes.
func (id *Identity) Settings(cfg *config.Server) ClusterSettings {
	return ClusterSettings{
		ClusterCIDR: cfg.ClusterCIDR, ServiceCIDR: cfg.ServiceCIDR,
		ClusterDNS: cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain,
		ClientCA:         id.ClientCAPEM(),
		ServerCA:         publishedOr(id.Creds.ServerCA, id.CAs.Server),
		KubeletServingCA: publishedOr(id.Creds.KubeletServingCA, id.CAs.KubeletServing),
		FlannelBackend:   cfg.FlannelBackend, Disabled: DisabledOf(cfg),
		EmbeddedRegistry: EmbeddedRegistryOf(cfg),
	}
}

// DisabledOf is cfg's --disable in the form ClusterSettings holds.
func DisabledOf(cfg *config.Server) []string {
	return slices.Sorted(slices.Values(append([]string{}, cfg.Disable...)))
}

// EmbeddedRegistryOf is cfg's --embedded-registry in the form
// ClusterSettings holds: empty, not nil, when the mirror is off.
func EmbeddedRegistryOf(cfg *config.Server) []string {
	return append([]string{}, cfg.EmbeddedRegistry...)
}

// Encode is s as string data, the form DecodeClusterSettings reads.
func (s ClusterSettings) Encode() map[string]string {
	out := map[string]string{
		keyClusterCIDR: s.ClusterCIDR.String(), keyServiceCIDR: s.ServiceCIDR.String(),
		keyClusterDNS: s.ClusterDNS.String(), keyClusterDomain: s.ClusterDomain,
		keyClientCA: string(s.ClientCA),
	}
	if s.FlannelBackend != "" {
		out[keyFlannelBackend] = s.FlannelBackend
	}
	if s.ServerCA != nil {
		out[keyServerCA] = string(s.ServerCA)
	}
	if s.KubeletServingCA != nil {
		out[keyKubeletServingCA] = string(s.KubeletServingCA)
	}
	if s.Disabled != nil {
		out[keyDisable] = disabledString(s.Disabled)
	}
	if s.EmbeddedRegistry != nil {
		out[keyEmbeddedRegistry] = disabledString(s.EmbeddedRegistry)
	}
	return out
}

func disabledString(d []string) string {
	if len(d) == 0 {
		return noneDisabled
	}
	return strings.Join(d, ",")
}

// DecodeClusterSettings reads settings that Encode wrote, checking every
// one; the error names each key that is missing or invalid. Keys it does
// not know are ignored: a newer server may publish more.
func DecodeClusterSettings(data map[string]string) (ClusterSettings, error) {
	var s ClusterSettings
	var errs []error
	parse := func(key string, decode func(string) error) {
		if v := data[key]; v == "" {
			errs = append(errs, fmt.Errorf("%s is missing", key))
		} else if err := decode(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	parse(keyClusterCIDR, func(v string) (err error) { s.ClusterCIDR, err = netip.ParsePrefix(v); return err })
	parse(keyServiceCIDR, func(v string) (err error) { s.ServiceCIDR, err = netip.ParsePrefix(v); return err })
	parse(keyClusterDNS, func(v string) (err error) { s.ClusterDNS, err = netip.ParseAddr(v); return err })
	parse(keyClusterDomain, func(v string) error { s.ClusterDomain = v; return nil })
	parse(keyClientCA, func(v string) error {
		s.ClientCA = []byte(v)
		_, err := certutil.ParseCertsPEM(s.ClientCA)
		return err
	})
	if err := errors.Join(errs...); err != nil {
		return ClusterSettings{}, err
	}
	s.FlannelBackend = data[keyFlannelBackend] // optional: see ClusterSettings
	for key, into := range map[string]*[]byte{keyServerCA: &s.ServerCA, keyKubeletServingCA: &s.KubeletServingCA} {
		if v, ok := data[key]; ok {
			if _, err := certutil.ParseCertsPEM([]byte(v)); err != nil {
				return ClusterSettings{}, fmt.Errorf("%s: %w", key, err)
			}
			*into = []byte(v)
		}
	}
	s.Disabled = listOrNone(data, keyDisable)
	s.EmbeddedRegistry = listOrNone(data, keyEmbeddedRegistry)
	return s, nil
}

// listOrNone decodes the list at key, which disabledString encoded: nil
// when it is missing.
func listOrNone(data map[string]string, key string) []string {
	v, ok := data[key]
	switch {
	case !ok:
		return nil
	case v == noneDisabled:
		return []string{}
	}
	return strings.Split(v, ",")
}

// MarshalJSON encodes s as a JSON object of its encoded keys.
func (s ClusterSettings) MarshalJSON() ([]byte, error) { return json.Marshal(s.Encode()) }

// UnmarshalJSON decodes what MarshalJSON wrote, with DecodeClusterSettings.
func (s *ClusterSettings) UnmarshalJSON(b []byte) error {
	var data map[string]string
	if err := json.Unmarshal(b, &data); err != nil {
		return fmt.Errorf("cluster settings: %w", err)
	}
	decoded, err := DecodeClusterSettings(data)
	if err != nil {
		return err
	}
	*s = decoded
	return nil
}

// Mismatches are the settings in which s, a joining server's own, differs
// from cluster, the cluster's: each names the flag, this server's value
// and the cluster's, so that one refusal lists every change to make. The
// client CA is not compared: the joining server takes the cluster's; the
// flannel backend, the disabled addons and the embedded registry are,
// where the cluster publishes them.
func (s ClusterSettings) Mismatches(cluster ClusterSettings) []string {
	var out []string
	for _, f := range []struct{ key, mine, theirs string }{
		{keyClusterCIDR, s.ClusterCIDR.String(), cluster.ClusterCIDR.String()},
		{keyServiceCIDR, s.ServiceCIDR.String(), cluster.ServiceCIDR.String()},
		{keyClusterDNS, s.ClusterDNS.String(), cluster.ClusterDNS.String()},
		{keyClusterDomain, s.ClusterDomain, cluster.ClusterDomain},
	} {
		if f.mine != f.theirs {
			out = append(out, fmt.Sprintf("--%s: this server %s, the cluster %s", f.key, f.mine, f.theirs))
		}
	}
	if cluster.FlannelBackend != "" && s.FlannelBackend != cluster.FlannelBackend {
		out = append(out, fmt.Sprintf("--%s: this server %s, the cluster %s", keyFlannelBackend, s.FlannelBackend, cluster.FlannelBackend))
	}
	if cluster.Disabled != nil && !slices.Equal(s.Disabled, cluster.Disabled) {
		out = append(out, fmt.Sprintf("--%s: this server %s, the cluster %s", keyDisable, disabledString(s.Disabled), disabledString(cluster.Disabled)))
	}
	if cluster.EmbeddedRegistry != nil && !slices.Equal(s.EmbeddedRegistry, cluster.EmbeddedRegistry) {
		out = append(out, fmt.Sprintf("--%s (and --%s-mirror): this server %s, the cluster %s", keyEmbeddedRegistry, keyEmbeddedRegistry,
			disabledString(s.EmbeddedRegistry), disabledString(cluster.EmbeddedRegistry)))
	}
	return out
}
