package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/join"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/pki"
)

// leaf is one certificate of the plan: where it goes, who signs it, what it says.
type leaf struct {
	files pki.Files
	ca    pki.Files
	spec  pki.Spec
}

// EnsurePKI creates the five CAs once and every leaf certificate the control
// plane (and the server's own node) uses, keeping existing ones that still
// match (see pki.EnsureLeaf), and the bundle that verifies kubelets.
func EnsurePKI(cfg *config.Server, c control.Creds, nc node.Creds, now time.Time, log *slog.Logger) error {
	if err := markLegacyKubeletCA(c); err != nil {
		return err
	}
	cas := map[pki.Files]*pki.KeyPair{}
	for f, cn := range map[pki.Files]string{
		c.ServerCA: "monokube-server-ca", c.ClientCA: "monokube-client-ca",
		c.RequestHeaderCA: "monokube-request-header-ca", c.EtcdCA: "monokube-etcd-ca",
		c.KubeletServingCA: "monokube-kubelet-serving-ca", c.APIServiceCA: "monokube-apiservice-ca",
	} {
		kp, err := pki.EnsureCA(f, fmt.Sprintf("%s@%d", cn, now.Unix()), now)
		if err != nil {
			return fmt.Errorf("certificate authority %s: %w", filepath.Base(string(f)), err)
		}
		cas[f] = kp
	}
	hostname, _ := os.Hostname() // best effort: only adds a SAN
	plan := leaves(cfg, c, hostname)
	if !cfg.DisableAgent {
		plan = append(plan, nodeLeaves(cfg, c, nc)...)
	}
	for _, l := range plan {
		issued, err := pki.EnsureLeaf(l.files, cas[l.ca], l.spec, now)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", filepath.Base(string(l.files)), err)
		}
		if issued {
			log.Info("issued certificate", "file", l.files.Cert())
		}
	}
	if err := writeKubeletCABundle(c, cas); err != nil {
		return err
	}
	return pki.EnsureSigningKey(c.ServiceKey, c.ServicePub)
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

// writeKubeletCABundle writes the CAs that kubelet serving certificates
// may chain to: the kubelet-serving CA, and the server CA only on a
// cluster marked legacy.
func writeKubeletCABundle(c control.Creds, cas map[pki.Files]*pki.KeyPair) error {
	bundle := pki.CertPEM(cas[c.KubeletServingCA].Cert)
	if fsutil.Exists(legacyKubeletCA(c)) {
		bundle = append(bundle, pki.CertPEM(cas[c.ServerCA].Cert)...)
	}
	return fsutil.WriteFile(c.KubeletCABundle, bundle, 0o644)
}

// leaves is the leaf-certificate plan.
func leaves(cfg *config.Server, c control.Creds, hostname string) []leaf {
	loopback := pki.Spec{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	serving := func(cn string) pki.Spec {
		s := loopback
		s.CommonName, s.Usages = cn, pki.ServerUsage
		return s
	}
	client := func(cn string, orgs ...string) pki.Spec {
		return pki.Spec{CommonName: cn, Organization: orgs, Usages: pki.ClientUsage}
	}
	etcdSpec := func(cn string) pki.Spec {
		return pki.Spec{CommonName: cn, Usages: pki.PeerUsage, DNSNames: []string{"localhost", cfg.NodeName},
			IPs: ips(netip.MustParseAddr("127.0.0.1"), cfg.NodeIP)}
	}
	return []leaf{
		{c.APIServerServing, c.ServerCA, APIServerServingSpec(cfg, hostname)},
		{c.CMServing, c.ServerCA, serving("kube-controller-manager")},
		{c.SchedulerServing, c.ServerCA, serving("kube-scheduler")},
		{c.MetricsServing, c.APIServiceCA, pki.Spec{CommonName: "metrics-server", Usages: pki.ServerUsage,
			DNSNames: []string{"metrics-server.kube-system.svc", "metrics-server.kube-system.svc." + cfg.ClusterDomain}}},
		{c.Admin, c.ClientCA, client(control.AdminUser, control.ClusterAdminsGroup)},
		{c.SuperAdmin, c.ClientCA, client(control.SuperAdminUser, "system:masters")},
		{c.ControllerManager, c.ClientCA, client("system:kube-controller-manager")},
		{c.Scheduler, c.ClientCA, client("system:kube-scheduler")},
		{c.APIServerKubelet, c.ClientCA, client(control.KubeletClientUser)},
		{c.AuthProxy, c.RequestHeaderCA, client(control.AuthProxyUser)},
		{c.ApproverClient, c.ClientCA, client(control.ApproverUser)},
		{c.TokenClient, c.ClientCA, client(control.TokenUser)},
		{c.NodeHostsClient, c.ClientCA, client(control.NodeHostsUser)},
		{c.FlannelPeerClient, c.ClientCA, client(control.FlannelPeerUser)},
		{c.EtcdServer, c.EtcdCA, etcdSpec("etcd-server")},
		{c.EtcdPeer, c.EtcdCA, etcdSpec("etcd-peer")},
		{c.EtcdClient, c.EtcdCA, client("etcd-client")},
	}
}

// nodeLeaves are the certificates of the server's own node, which joins
// with credentials the server issues directly.
func nodeLeaves(cfg *config.Server, c control.Creds, nc node.Creds) []leaf {
	serving := pki.Spec{CommonName: cfg.NodeName, Usages: pki.ServerUsage,
		DNSNames: []string{"localhost", cfg.NodeName}, IPs: ips(netip.MustParseAddr("127.0.0.1"), cfg.NodeIP)}
	return []leaf{
		{nc.KubeletServing, c.KubeletServingCA, serving},
		{nc.KubeletClient, c.ClientCA, pki.Spec{CommonName: "system:node:" + cfg.NodeName,
			Organization: []string{"system:nodes"}, Usages: pki.ClientUsage}},
		{nc.KubeProxyClient, c.ClientCA, pki.Spec{CommonName: "system:kube-proxy", Usages: pki.ClientUsage}},
	}
}

// APIServerServingSpec is the apiserver's serving certificate: every name
// and address a client may use to reach it, in-cluster and from outside.
func APIServerServingSpec(cfg *config.Server, hostname string) pki.Spec {
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc." + cfg.ClusterDomain, cfg.NodeName}
	if hostname != "" {
		dns = append(dns, strings.ToLower(hostname))
	}
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), cfg.NodeIP, cfg.AdvertiseAddress, cfg.ServiceCIDR.Addr().Next()}
	for _, san := range cfg.TLSSANs {
		if a, err := netip.ParseAddr(san); err == nil {
			addrs = append(addrs, a)
		} else {
			dns = append(dns, san)
		}
	}
	slices.Sort(dns)
	return pki.Spec{CommonName: "kube-apiserver", Usages: pki.ServerUsage, DNSNames: slices.Compact(dns), IPs: ips(addrs...)}
}

// ApproverPolicy is what no node may claim: every name and address of the
// apiserver's serving certificate, the cluster's networks and domain.
func ApproverPolicy(cfg *config.Server, hostname string) join.Policy {
	spec := APIServerServingSpec(cfg, hostname)
	p := join.Policy{ClusterDomain: cfg.ClusterDomain, ServerNames: spec.DNSNames, CIDRs: []netip.Prefix{cfg.ClusterCIDR, cfg.ServiceCIDR}}
	for _, ip := range spec.IPs {
		if a, ok := netip.AddrFromSlice(ip); ok {
			p.ServerIPs = append(p.ServerIPs, a.Unmap())
		}
	}
	return p
}

// ips converts and de-duplicates addresses, in sorted order.
func ips(addrs ...netip.Addr) []net.IP {
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	addrs = slices.Compact(addrs)
	out := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, net.IP(a.AsSlice()))
	}
	return out
}
