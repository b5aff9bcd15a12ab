package etcd

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"

	mklog "github.com/monokube/monokube/internal/log"
	"github.com/monokube/monokube/internal/pki"
)

// The member's ports, fixed like k3s's: clients on loopback and on the
// node IP (other servers of the cluster), peers on the node IP. Both take
// only certificates of the etcd CA.
const (
	ClientPort = 2379
	PeerPort   = 2380
)

// ClientURL is where the local member serves clients: the kube-apiserver's
// --etcd-servers.
func ClientURL() string {
	u := clientURL(ClientPort)
	return u.String()
}

// ClientURLOn is where the member of the node at ip serves the other
// servers: a joining server adds its member there.
func ClientURLOn(ip netip.Addr) string {
	u := httpsURL(ip, ClientPort)
	return u.String()
}

// PeerURL is where the member of the node at ip serves its peers.
func PeerURL(ip netip.Addr) string {
	u := httpsURL(ip, PeerPort)
	return u.String()
}

func clientURL(port int) url.URL {
	return httpsURL(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port)
}

// httpsURL brackets an IPv6 ip (net.JoinHostPort).
func httpsURL(ip netip.Addr, port int) url.URL {
	return url.URL{Scheme: "https", Host: net.JoinHostPort(ip.String(), strconv.Itoa(port))}
}

// memberName is the node name. HA will need a re-joined node to be a new
// member, which k3s gets by a persisted random suffix.
func memberName(nodeName string) string { return nodeName }

// embedConfig is a one-member cluster, or with InitialCluster a member
// joining a running one: the member advertises what it listens on.
func (e *Etcd) embedConfig() *embed.Config {
	c := e.cfg
	local, client, peer := clientURL(c.ClientPort), httpsURL(c.NodeIP, c.ClientPort), httpsURL(c.NodeIP, c.PeerPort)
	ec := embed.NewConfig()
	ec.Name = memberName(c.NodeName)
	ec.Dir = c.DataDir
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{local, client}, []url.URL{client}
	if c.NodeIP.IsLoopback() {
		ec.ListenClientUrls = []url.URL{local} // tests: one address, one listener
	}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	if c.InitialCluster != "" {
		ec.InitialCluster, ec.ClusterState = c.InitialCluster, embed.ClusterStateFlagExisting
	}
	ec.ForceNewCluster = c.ForceNewCluster
	ec.ClientTLSInfo = transport.TLSInfo{
		CertFile: c.ServerCert, KeyFile: c.ServerKey, TrustedCAFile: c.CAFile, ClientCertAuth: true,
	}
	ec.PeerTLSInfo = transport.TLSInfo{
		CertFile: c.PeerCert, KeyFile: c.PeerKey, TrustedCAFile: c.CAFile, ClientCertAuth: true,
	}
	ec.TlsMinVersion, ec.CipherSuites = "TLS1.2", pki.CipherSuites()
	// etcd logs every raft step at info; keep its warnings unless debugging.
	level := zapcore.WarnLevel
	if c.Debug {
		level = zapcore.InfoLevel
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(mklog.Zap(e.log, level))
	return ec
}
