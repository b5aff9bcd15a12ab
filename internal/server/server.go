// Package server wires the server role: it checks the machine, makes or
// loads the cluster's identity (internal/identity) and runs etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, and (unless
// --disable-agent) the server's own node, as one lifecycle group.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	bundled "github.com/monokube/monokube/embed"
	"github.com/monokube/monokube/internal/addons"
	"github.com/monokube/monokube/internal/carotate"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/deploy"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/flannel"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/join"
	"github.com/monokube/monokube/internal/lifecycle"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/satoken"
	"github.com/monokube/monokube/internal/secretsenc"
	"github.com/monokube/monokube/internal/sysreq"
	"github.com/monokube/monokube/internal/upgrade"
)

// allComponents lists everything the server runs, in start order.
// It has no side effects: plan (nil with --disable-agent) holds the node's
// prepared files.
func allComponents(cfg *config.Server, l datadir.Layout, id *identity.Identity, tok serverToken, db dbStart, plan *node.Plan, log *slog.Logger) ([]lifecycle.Component, error) {
	c := id.Creds
	probe, err := newProber(c)
	if err != nil {
		return nil, err
	}
	super := restConfig(cfg, c, c.SuperAdmin)
	// Access makes some twenty objects before the controller-manager may
	// start: client-go's default 5 requests/s would hold the start 2 s.
	fast := rest.CopyConfig(super)
	fast.QPS, fast.Burst = 100, 200
	superClient, err := kubernetes.NewForConfig(fast)
	if err != nil {
		return nil, fmt.Errorf("super-admin client: %w", err)
	}
	access := control.NewAccess(superClient, c.AdminBindingMarker, identities(), log.With("component", "control-plane-access"))
	access.AfterAdminBound = func() error { return id.WriteAdminKubeconfigs(cfg) }
	deployers, err := deployComponents(cfg, l, c, super, tok, log)
	if err != nil {
		return nil, err
	}
	signer := satoken.NewSigner(c.SASigner, c.ServiceKey, c.ServicePub, log.With("component", "service-account-signer"))
	components, err := controlPlane(cfg, l, c, probe, access, db, signer, log)
	if err != nil {
		return nil, err
	}
	elected, err := electedControllers(cfg, c, superClient, log)
	if err != nil {
		return nil, err
	}
	components = append(append(components, deployers...), elected)
	renewal, err := renewalComponent(cfg, l, id, log)
	if err != nil {
		return nil, err
	}
	etcdTrusted, err := os.ReadFile(c.EtcdCA.Cert()) // as etcd and the apiserver are about to read it
	if err != nil {
		return nil, err
	}
	components = append(components, renewal, &secretsenc.Sync{Client: superClient, File: c.EncryptionConfig, Node: cfg.NodeName,
		Applied: control.AppliedEncryptionConfig, Log: log.With("component", "secrets-encryption-sync")},
		&satoken.Sync{Client: superClient, Node: cfg.NodeName, Signer: signer, Log: log.With("component", "service-account-keys-sync"),
			Paths: satoken.Paths{Key: c.ServiceKey, Pub: c.ServicePub, EncryptionConfig: c.EncryptionConfig}},
		&carotate.Sync{Client: superClient, Layout: l, Node: cfg.NodeName, Checked: func() bool { return !id.RotatePending() },
			EtcdTrusted: etcdTrusted, Servers: func(ctx context.Context) ([]string, error) { return etcdNames(ctx, c, log) },
			Log: log.With("component", "ca-rotation-sync")})
	if !cfg.Snapshots.Disabled {
		snaps, err := snapshotComponent(cfg, l, c, log)
		if err != nil {
			return nil, err
		}
		components = append(components, snaps)
	}
	if cfg.DisableAgent {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find monokube's own executable: %w", err)
		}
		return append(components, upgrade.NewSweeper(l.Data, log.With("component", "version-sweeper"), filepath.Dir(self))), nil
	}
	lb := nodeBalancer(cfg, l, id, log)
	nodes, err := plan.Components(log)
	if err != nil {
		return nil, err
	}
	label := roleLabel{client: superClient, node: cfg.NodeName, log: log.With("component", "control-plane-label")}
	return append(append(append(components, lb), nodes...), lifecycle.Background(label)), nil
}

// etcdNames are the names of the cluster's servers, as this server's
// etcd member lists them.
func etcdNames(ctx context.Context, c control.Creds, log *slog.Logger) ([]string, error) {
	cluster, err := c.LocalEtcd(log)
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	return cluster.Names(ctx)
}

// identities are the in-process controllers' users and rights.
func identities() []control.Identity {
	var out []control.Identity
	for user, rules := range map[string]func() (cluster, system []rbacv1.PolicyRule){
		control.ApproverUser: join.ApproverRules, control.TokenUser: join.TokenRules,
		control.NodeHostsUser: addons.NodeHostsRules, control.FlannelPeerUser: flannel.PeerRules,
		control.RootCAUser: RootCARules,
	} {
		cluster, system := rules()
		out = append(out, control.Identity{User: user, Cluster: cluster, System: system})
	}
	return out
}

// deployComponents keep this server's manifests directory applied (as
// super-admin: it applies whatever the directory holds, RBAC included) and
// its join token current, and without a node of its own route to pods
// (each with a client certificate of its own and only its rights).
func deployComponents(cfg *config.Server, l datadir.Layout, c control.Creds, super *rest.Config, tok serverToken, log *slog.Logger) ([]lifecycle.Component, error) {
	manifests, err := deploy.New(l.Manifest(), l.ManifestState(), super, log.With("component", "manifests"))
	if err != nil {
		return nil, err
	}
	as := func(f pki.Files) (kubernetes.Interface, error) { return controllerClient(cfg, c, f) }
	tokens, err := as(c.TokenClient)
	if err != nil {
		return nil, err
	}
	out := []lifecycle.Component{manifests, join.NewServerToken(tokens, join.ServerTokenConfig{
		CA: tok.ca, CAFile: c.ServerCA.Cert(), Token: tok.Token, Fresh: tok.fresh, TTL: cfg.TokenTTL, Path: l.Token(),
	}, log.With("component", "join-token"))}
	if cfg.DisableAgent && cfg.FlannelBackend != node.BackendNone {
		// No node here, yet the apiserver must reach pods (webhooks,
		// aggregated APIs): route to them over the nodes' VXLAN.
		client, err := as(c.FlannelPeerClient)
		if err != nil {
			return nil, err
		}
		out = append(out, flannel.NewPeer(cfg.NodeIP, cfg.FlannelIface, client, log.With("component", "flannel-routes")))
	}
	return out, nil
}

// electedControllers are the cluster-wide controllers (clusterControllers),
// run while this server holds their lease: the CSR approver, the
// publisher of kube-root-ca.crt, with CoreDNS
// the node names in DNS, each with its own client certificate and rights,
// and the etcd member removal (super-admin: it reads Nodes only, then acts
// on etcd). The approver's client takes the lease: it keeps Leases in
// kube-system already (its node-name claims).
func electedControllers(cfg *config.Server, c control.Creds, super kubernetes.Interface, log *slog.Logger) (*control.Elected, error) {
	as := func(f pki.Files) (kubernetes.Interface, error) { return controllerClient(cfg, c, f) }
	approver, err := as(c.ApproverClient)
	if err != nil {
		return nil, err
	}
	hostname, _ := os.Hostname() // best effort, as in identity.Init
	rootCA, err := as(c.RootCAClient)
	if err != nil {
		return nil, err
	}
	removalLog := log.With("component", "etcd-member-removal")
	cs := []lifecycle.Component{
		join.NewApprover(approver, ApproverPolicy(cfg, hostname), signingDuration(cfg), log.With("component", "csr-approver")),
		memberRemoval{client: super, log: removalLog, dial: func() (*etcd.Cluster, error) { return c.LocalEtcd(removalLog) }},
		&rootCAPublisher{client: rootCA, file: c.ServerCA.Cert(), log: log.With("component", "root-ca-publisher")},
	}
	if !slices.Contains(cfg.Disable, addons.CoreDNS) {
		client, err := as(c.NodeHostsClient)
		if err != nil {
			return nil, err
		}
		cs = append(cs, addons.NewNodeHosts(client, log.With("component", "coredns-node-hosts")))
	}
	with := log.With("component", clusterLease)
	return control.NewElectedClient(clusterControllers{components: cs, log: with}, approver, cfg.NodeName, with), nil
}

// signingDuration is how long the controller-manager's certificates last:
// its upstream default unless --kube-controller-manager-arg sets it.
func signingDuration(cfg *config.Server) time.Duration {
	d := 365 * 24 * time.Hour
	for _, a := range cfg.Args.ControllerManager {
		if v, err := time.ParseDuration(a.Value); a.Key == "cluster-signing-duration" && err == nil && v > d {
			d = v
		}
	}
	return d
}

// serverToken is the server's own join token (fresh at first start) and
// the CA it pins.
type serverToken struct {
	join.Token
	fresh bool
	ca    *x509.Certificate
}

// prepareJoin loads (or makes) the server's join token and writes what
// joining needs into the manifests directory.
func prepareJoin(cfg *config.Server, l datadir.Layout, id *identity.Identity) (serverToken, error) {
	// The server CA's file as it is now: during a CA rotation it holds two
	// CAs, and the first signs; joining nodes get the old one's
	// certificate of the new one too.
	bundle, err := identity.JoinCABundle(id.Creds)
	if err != nil {
		return serverToken{}, err
	}
	trusted, err := pki.ParseBundle(bundle)
	if err != nil {
		return serverToken{}, err
	}
	t, fresh, err := join.LoadServerToken(l.Token(), trusted[0], trusted)
	if err != nil {
		return serverToken{}, err
	}
	m, err := join.Manifest(join.Cluster{
		Server:   "https://" + net.JoinHostPort(cfg.AdvertiseAddress.String(), strconv.Itoa(cfg.HTTPSPort)),
		CA:       bundle,
		Settings: id.Settings(cfg),
	})
	if err != nil {
		return serverToken{}, err
	}
	if err := fsutil.WriteFile(filepath.Join(l.Manifest(), "monokube-join.yaml"), m, 0o600); err != nil {
		return serverToken{}, err
	}
	return serverToken{Token: t, fresh: fresh, ca: trusted[0]}, nil
}

// syncAddons renders the embedded addon manifests into the manifests
// directory, and removes those of disabled addons.
func syncAddons(cfg *config.Server, l datadir.Layout, c control.Creds, log *slog.Logger) error {
	imgs, err := bundled.Images()
	if err != nil {
		return err
	}
	files := map[string][]byte{c.KubeletCABundle: nil, c.MetricsServing.Cert(): nil, c.MetricsServing.Key(): nil, c.APIServiceCA.Cert(): nil}
	for f := range files {
		if files[f], err = os.ReadFile(f); err != nil {
			return fmt.Errorf("addon credentials: %w", err)
		}
	}
	s := addons.Settings{
		ClusterDNS:      cfg.ClusterDNS,
		ClusterDomain:   cfg.ClusterDomain,
		StoragePath:     l.Storage(),
		KubeletCA:       string(files[c.KubeletCABundle]),
		MetricsCert:     string(files[c.MetricsServing.Cert()]),
		MetricsKey:      string(files[c.MetricsServing.Key()]),
		MetricsCABundle: base64.StdEncoding.EncodeToString(files[c.APIServiceCA.Cert()]),
		Images: addons.Images{
			CoreDNS:       imgs[bundled.ImageCoreDNS].Ref,
			LocalPath:     imgs[bundled.ImageLocalPath].Ref,
			MetricsServer: imgs[bundled.ImageMetricsServer].Ref,
			Busybox:       imgs[bundled.ImageBusybox].Ref,
		},
	}
	return addons.Sync(l.Manifest(), s, cfg.Disable, log.With("component", "addons"))
}

// NodeConfig is the node part of the server's configuration.
func NodeConfig(cfg *config.Server) node.Config {
	return node.Config{
		NodeName:         cfg.NodeName,
		NodeIP:           cfg.NodeIP,
		ClusterCIDR:      cfg.ClusterCIDR,
		ServiceCIDR:      cfg.ServiceCIDR,
		ClusterDNS:       cfg.ClusterDNS,
		ClusterDomain:    cfg.ClusterDomain,
		KubeletArgs:      cfg.Args.Kubelet,
		KubeProxyArgs:    cfg.Args.KubeProxy,
		FlannelBackend:   cfg.FlannelBackend,
		FlannelIface:     cfg.FlannelIface,
		EmbeddedRegistry: cfg.EmbeddedRegistry,
		Debug:            cfg.Debug,
	}
}

// Preflight checks, before anything is written, every requirement of the
// server on this machine: what `monokube check-config` prints and what Run
// refuses to start on. host is what the node adapts to (zero with
// --disable-agent).
func Preflight(cfg *config.Server, c sysreq.Checks) (sysreq.Node, sysreq.Report) {
	report := sysreq.Report{c.RunsAsRoot("server")}
	var host sysreq.Node
	if !cfg.DisableAgent {
		var nodeReport sysreq.Report
		host, nodeReport = node.Preflight(c)
		report = append(report, nodeReport...)
	}
	report = append(report,
		sysreq.Writable(cfg.DataDir, "data-dir"),
		sysreq.Writable(filepath.Dir(cfg.WriteKubeconfig), "write-kubeconfig"),
		c.DiskFree(cfg.DataDir, "data-dir"),
	)
	return host, append(report, c.Ports(Ports(cfg))...)
}

// Ports lists every address the server listens on.
func Ports(cfg *config.Server) []sysreq.Port {
	lo := netip.MustParseAddr("127.0.0.1")
	ports := []sysreq.Port{
		{Addr: cfg.BindAddress, Port: cfg.HTTPSPort, What: "--https-listen-port"},
		{Addr: lo, Port: etcd.ClientPort, What: "etcd client port"},
		{Addr: lo, Port: etcd.BalancerPort, What: "etcd balancer port"},
		{Addr: cfg.NodeIP, Port: etcd.PeerPort, What: "etcd peer port"},
		{Addr: lo, Port: control.CMPort, What: "kube-controller-manager port"},
		{Addr: lo, Port: control.SchedulerPort, What: "kube-scheduler port"},
	}
	if !cfg.DisableAgent {
		ports = append(ports, node.Ports(cfg.NodeIP, len(cfg.EmbeddedRegistry) > 0)...)
	}
	return ports
}

// dbStart is what the pre-run phase decided about this start's etcd
// member: nothing (it starts from its data), a join, or a cluster reset.
type dbStart struct {
	join  *memberJoin // joining another server's cluster
	reset *etcd.Reset // --cluster-reset, with members to drop
}

// controlPlane, in start order, is etcd, the apiserver's balancer to the
// etcd members (and, joining, the member's promotion), the apiserver, the access it grants, and the controller-manager and
// scheduler, each run while this server holds its lease.
func controlPlane(cfg *config.Server, l datadir.Layout, c control.Creds, probe *control.Prober, access *control.Access, db dbStart, signer *satoken.Signer, log *slog.Logger) ([]lifecycle.Component, error) {
	with := func(name string) *slog.Logger { return log.With("component", name) }
	ec := etcdConfig(cfg, l, c)
	ec.ForceNewCluster = db.reset != nil
	var promote []lifecycle.Component
	if mj := db.join; mj != nil { // a joining server: its member starts as a learner
		ec.InitialCluster = mj.InitialCluster // empty when it started before
		promote = []lifecycle.Component{lifecycle.Await(promotion{mj})}
	}
	lb, err := etcdBalancer(cfg, l, c, with("etcd-balancer"))
	if err != nil {
		return nil, err
	}
	out := append([]lifecycle.Component{etcd.New(ec, with("etcd")), lb}, promote...)
	cm, err := control.NewElected(control.NewControllerManager(control.ControllerManagerArgs(cfg, c), probe), c.CMKubeconfig, cfg.NodeName, with("kube-controller-manager"))
	if err != nil {
		return nil, err
	}
	sched, err := control.NewElected(control.NewScheduler(control.SchedulerArgs(cfg, c), probe), c.SchedulerKubeconfig, cfg.NodeName, with("kube-scheduler"))
	if err != nil {
		return nil, err
	}
	return append(out,
		signer,
		control.NewAPIServer(control.APIServerArgs(cfg, c), cfg.HTTPSPort, probe, with("kube-apiserver")),
		lifecycle.Await(access),
		cm, sched,
	), nil
}

func etcdConfig(cfg *config.Server, l datadir.Layout, c control.Creds) etcd.Config {
	return etcd.Config{
		NodeName:   cfg.NodeName,
		NodeIP:     cfg.NodeIP,
		DataDir:    l.Etcd(),
		CAFile:     c.EtcdCA.Cert(),
		ServerCert: c.EtcdServer.Cert(),
		ServerKey:  c.EtcdServer.Key(),
		PeerCert:   c.EtcdPeer.Cert(),
		PeerKey:    c.EtcdPeer.Key(),
		Debug:      cfg.Debug,
	}
}

// controllerClient talks to the local apiserver with the client
// certificate f.
func controllerClient(cfg *config.Server, c control.Creds, f pki.Files) (kubernetes.Interface, error) {
	client, err := kubernetes.NewForConfig(restConfig(cfg, c, f))
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", filepath.Base(string(f)), err)
	}
	return client, nil
}

// restConfig is a client of the local apiserver with the client
// certificate f, read from its files: client-go reads them again when
// they change (a renewal) and closes connections made with the old one.
func restConfig(cfg *config.Server, c control.Creds, f pki.Files) *rest.Config {
	return &rest.Config{
		Host:            "https://" + control.LocalAPIServer(cfg.HTTPSPort),
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.ServerCA.Cert(), CertFile: f.Cert(), KeyFile: f.Key()},
	}
}

// newProber trusts the serving CA and presents the super-admin
// certificate, read at each handshake so that a renewal is followed: the
// apiserver's readiness checks (bootstrap RBAC) must answer before any
// RBAC binding exists, the admin's included.
func newProber(c control.Creds) (*control.Prober, error) {
	cert := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		kp, err := tls.LoadX509KeyPair(c.SuperAdmin.Cert(), c.SuperAdmin.Key())
		if err != nil {
			return nil, fmt.Errorf("load super-admin certificate: %w", err)
		}
		return &kp, nil
	}
	ca, err := os.ReadFile(c.ServerCA.Cert())
	if err != nil {
		return nil, fmt.Errorf("read server CA: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	return control.NewProber(roots, cert), nil
}
