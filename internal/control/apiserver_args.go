package control

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/etcd"
)

// Issuer is the service-account token issuer: the in-cluster name of the
// apiserver, so workloads can fetch its OIDC discovery document.
func Issuer(cfg *config.Server) string {
	return "https://kubernetes.default.svc." + cfg.ClusterDomain
}

// APIServerArgs is the kube-apiserver command line for cfg.
func APIServerArgs(cfg *config.Server, c Creds) []string {
	defaults := Flags{
		"advertise-address":             cfg.AdvertiseAddress.String(),
		"bind-address":                  cfg.BindAddress.String(),
		"allow-privileged":              "true",
		"authorization-mode":            "Node,RBAC",
		"enable-admission-plugins":      "NodeRestriction",
		"admission-control-config-file": c.AdmissionConfig,
		"audit-policy-file":             c.AuditPolicy,
		"audit-log-path":                c.AuditLog,
		"audit-log-maxage":              "30",
		"audit-log-maxbackup":           "10",
		"audit-log-maxsize":             "100",
		"authentication-config":         c.AuthnConfig,
		"enable-bootstrap-token-auth":   "true", // join tokens (internal/join)
		"client-ca-file":                c.ClientCA.Cert(),
		"tls-cert-file":                 c.APIServerServing.Cert(),
		"tls-private-key-file":          c.APIServerServing.Key(),
		"etcd-cafile":                   c.EtcdCA.Cert(),
		"etcd-certfile":                 c.EtcdClient.Cert(),
		"etcd-keyfile":                  c.EtcdClient.Key(),
		"service-cluster-ip-range":      cfg.ServiceCIDR.String(),
		"service-account-issuer":        Issuer(cfg),
		"api-audiences":                 Issuer(cfg),
		// monokube signs the tokens (package satoken), so that the key
		// can be rotated while the apiserver runs.
		"service-account-signing-endpoint": c.SASigner,
		"encryption-provider-config":       c.EncryptionConfig,
		// secrets-encrypt rotate-keys changes the file on every server.
		"encryption-provider-config-automatic-reload": "true",
		"kubelet-client-certificate":                  c.APIServerKubelet.Cert(),
		"kubelet-client-key":                          c.APIServerKubelet.Key(),
		"kubelet-preferred-address-types":             "InternalIP,ExternalIP,Hostname",
		"kubelet-certificate-authority":               c.KubeletCABundle, // kubelets' serving certs
		"proxy-client-cert-file":                      c.AuthProxy.Cert(),
		"proxy-client-key-file":                       c.AuthProxy.Key(),
		"requestheader-client-ca-file":                c.RequestHeaderCA.Cert(),
		"requestheader-allowed-names":                 AuthProxyUser,
		"requestheader-username-headers":              "X-Remote-User",
		"requestheader-group-headers":                 "X-Remote-Group",
		"requestheader-extra-headers-prefix":          "X-Remote-Extra-",
		"enable-aggregator-routing":                   "true",
		"profiling":                                   "false",
		"storage-backend":                             "etcd3",
		// The in-process kubelet and kube-proxy keep their watches open
		// after they are told to stop; without a bound the apiserver's
		// graceful shutdown waits for them until monokube gives up on it.
		"shutdown-watch-termination-grace-period": "1s",
	}
	maps.Copy(defaults, tlsFlags())
	forced := Flags{
		"secure-port":              strconv.Itoa(cfg.HTTPSPort),
		"etcd-servers":             etcd.BalancedURL(),
		"enable-admission-plugins": withNodeRestriction(cfg.Args.APIServer),
	}
	return Merge(defaults, cfg.Args.APIServer, forced)
}

// withNodeRestriction is the user's enable-admission-plugins with
// NodeRestriction always in it: the node RBAC monokube grants (a node may
// delete and patch nodes) is safe only because NodeRestriction keeps each
// node to its own object.
func withNodeRestriction(user []config.Arg) string {
	plugins := []string{"NodeRestriction"}
	for _, a := range user {
		if a.Key == "enable-admission-plugins" {
			for _, p := range strings.Split(a.Value, ",") {
				if p = strings.TrimSpace(p); p != "" && !slices.Contains(plugins, p) {
					plugins = append(plugins, p)
				}
			}
		}
	}
	return strings.Join(plugins, ",")
}

// AuthProxyUser is the common name of the aggregator's front-proxy client.
const AuthProxyUser = "system:auth-proxy"

// ClusterInfoPath is the public kube-public/cluster-info ConfigMap, from
// which a joining node learns the server's CA (internal/join).
const ClusterInfoPath = "/api/v1/namespaces/kube-public/configmaps/cluster-info"

// AuthnConfig renders the structured authentication configuration: it
// admits anonymous requests only to the health endpoints and cluster-info
// (which RBAC lets system:anonymous get), so an unauthenticated client can
// probe liveness and discover the cluster but read nothing else.
func AuthnConfig() []byte {
	var b strings.Builder
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\nanonymous:\n  enabled: true\n  conditions:\n")
	for _, p := range []string{"/healthz", "/livez", "/readyz", ClusterInfoPath} {
		fmt.Fprintf(&b, "  - path: %s\n", p)
	}
	return []byte(b.String())
}
