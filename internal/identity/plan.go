package identity

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/pki"
)

// leaf is one certificate of the plan: where it goes, who signs it, what
// it says, and the service it belongs to (`certificate rotate --service`).
type leaf struct {
	files   pki.Files
	ca      pki.Files
	spec    pki.Spec
	service string
}

// Services, as `monokube certificate rotate --service` names them.
const (
	ServiceAPIServer         = "kube-apiserver"
	ServiceControllerManager = "kube-controller-manager"
	ServiceScheduler         = "kube-scheduler"
	ServiceMetricsServer     = "metrics-server"
	ServiceAdmin             = "admin"
	ServiceAuthProxy         = "auth-proxy"
	ServiceControllers       = "monokube-controllers"
	ServiceEtcd              = "etcd"
	ServiceKubelet           = "kubelet"
	ServiceKubeProxy         = "kube-proxy"
)

// Services lists every service name, in the order `--help` shows them.
func Services() []string {
	return []string{ServiceAdmin, ServiceAPIServer, ServiceAuthProxy, ServiceControllerManager, ServiceEtcd,
		ServiceKubelet, ServiceKubeProxy, ServiceMetricsServer, ServiceControllers, ServiceScheduler}
}

// leaves is the leaf-certificate plan of the control plane.
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
		{c.APIServerServing, c.ServerCA, APIServerServingSpec(cfg, hostname), ServiceAPIServer},
		{c.CMServing, c.ServerCA, serving("kube-controller-manager"), ServiceControllerManager},
		{c.SchedulerServing, c.ServerCA, serving("kube-scheduler"), ServiceScheduler},
		{c.MetricsServing, c.APIServiceCA, pki.Spec{CommonName: "metrics-server", Usages: pki.ServerUsage,
			DNSNames: []string{"metrics-server.kube-system.svc", "metrics-server.kube-system.svc." + cfg.ClusterDomain}}, ServiceMetricsServer},
		{c.Admin, c.ClientCA, client(control.AdminUser, control.ClusterAdminsGroup), ServiceAdmin},
		{c.SuperAdmin, c.ClientCA, client(control.SuperAdminUser, "system:masters"), ServiceAdmin},
		{c.ControllerManager, c.ClientCA, client("system:kube-controller-manager"), ServiceControllerManager},
		{c.Scheduler, c.ClientCA, client("system:kube-scheduler"), ServiceScheduler},
		{c.APIServerKubelet, c.ClientCA, client(control.KubeletClientUser), ServiceAPIServer},
		{c.AuthProxy, c.RequestHeaderCA, client(control.AuthProxyUser), ServiceAuthProxy},
		{c.ApproverClient, c.ClientCA, client(control.ApproverUser), ServiceControllers},
		{c.TokenClient, c.ClientCA, client(control.TokenUser), ServiceControllers},
		{c.NodeHostsClient, c.ClientCA, client(control.NodeHostsUser), ServiceControllers},
		{c.RootCAClient, c.ClientCA, client(control.RootCAUser), ServiceControllers},
		{c.FlannelPeerClient, c.ClientCA, client(control.FlannelPeerUser), ServiceControllers},
		{c.EtcdServer, c.EtcdCA, etcdSpec("etcd-server"), ServiceEtcd},
		{c.EtcdPeer, c.EtcdCA, etcdSpec("etcd-peer"), ServiceEtcd},
		{c.EtcdClient, c.EtcdCA, client("etcd-client"), ServiceAPIServer},
	}
}

// nodeLeaves are the certificates of the server's own node, which joins
// with credentials the server issues directly.
func nodeLeaves(cfg *config.Server, c control.Creds, own NodeFiles) []leaf {
	serving := pki.Spec{CommonName: cfg.NodeName, Usages: pki.ServerUsage,
		DNSNames: []string{"localhost", cfg.NodeName}, IPs: ips(netip.MustParseAddr("127.0.0.1"), cfg.NodeIP)}
	return []leaf{
		{own.KubeletServing, c.KubeletServingCA, serving, ServiceKubelet},
		{own.KubeletClient, c.ClientCA, pki.Spec{CommonName: "system:node:" + cfg.NodeName,
			Organization: []string{"system:nodes"}, Usages: pki.ClientUsage}, ServiceKubelet},
		{own.KubeProxyClient, c.ClientCA, pki.Spec{CommonName: "system:kube-proxy", Usages: pki.ClientUsage}, ServiceKubeProxy},
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
