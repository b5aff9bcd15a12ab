package control

import (
	"log/slog"
	"path/filepath"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/etcd"
	"github.com/monokube/monokube/internal/pki"
)

// Creds names every credential and rendered file the control plane reads.
// It is the single place these paths are decided; the cluster's identity
// (internal/identity) writes exactly these files.
type Creds struct {
	ServerCA        pki.Files // signs serving certificates
	ClientCA        pki.Files // signs client certificates
	RequestHeaderCA pki.Files // signs the aggregator's front-proxy client
	EtcdCA          pki.Files
	// KubeletServingCA signs kubelet serving certificates, which the
	// approver grants on a node's own word: nothing trusts it as the
	// apiserver's identity, only the apiserver and metrics-server trust it,
	// through KubeletCABundle, as kubelets'.
	KubeletServingCA pki.Files
	KubeletCABundle  string
	// ClientSigner and KubeletServingSigner hold the first certificate of
	// the client and kubelet-serving CA files alone, for the controller-
	// manager's CSR signers, which take a file of one certificate (a CA
	// file holds two during a rotation); the key is the CA's.
	ClientSigner         string
	KubeletServingSigner string
	// APIServiceCA signs the serving certificates of the aggregated APIs
	// monokube deploys (metrics-server); APIServices trust only it.
	APIServiceCA pki.Files

	APIServerServing pki.Files
	CMServing        pki.Files
	SchedulerServing pki.Files
	MetricsServing   pki.Files // metrics-server's, from APIServiceCA

	Admin             pki.Files // monokube:cluster-admins, bound by RBAC
	SuperAdmin        pki.Files // system:masters, break-glass only
	ControllerManager pki.Files
	Scheduler         pki.Files
	APIServerKubelet  pki.Files // the apiserver's client cert towards kubelets
	AuthProxy         pki.Files // the aggregator's front-proxy client cert
	// The in-process controllers' client certs, each with only its rights.
	ApproverClient    pki.Files
	TokenClient       pki.Files
	NodeHostsClient   pki.Files
	RootCAClient      pki.Files // monokube's kube-root-ca.crt publisher
	FlannelPeerClient pki.Files

	EtcdServer pki.Files // etcd's client-facing serving cert
	EtcdPeer   pki.Files
	EtcdClient pki.Files // the apiserver's client cert towards etcd

	ServiceKey string // service-account token signing key
	ServicePub string // the keys that verify service-account tokens
	// SASigner is the socket of the service-account token signer
	// kube-apiserver uses (package satoken), in the run dir.
	SASigner string

	// PKILock serialises the writes of leaves: a running server's renewal
	// and a start's against `monokube certificate rotate`.
	PKILock string
	// RotateRequest is `certificate rotate`'s request to the server, and
	// RotateResult the server's answer (package identity).
	RotateRequest string
	RotateResult  string

	AdminKubeconfig      string
	SuperAdminKubeconfig string
	AdminBindingMarker   string // the admin group's binding was made once
	CMKubeconfig         string
	SchedulerKubeconfig  string
	EncryptionConfig     string
	// RecoveryKey seals the identity in etcd snapshots (package snapshot);
	// every server of a cluster holds the same one.
	RecoveryKey     string
	AuthnConfig     string
	AdmissionConfig string // Pod Security defaults
	AuditPolicy     string
	AuditLog        string // rotated by the apiserver
}

// NewCreds lays out the control plane's credentials under l.
func NewCreds(l datadir.Layout) Creds {
	t := func(name string) pki.Files { return pki.Files(l.TLSFile(name)) }
	e := func(name string) pki.Files { return pki.Files(l.EtcdTLSFile(name)) }
	return Creds{
		ServerCA:             t("server-ca"),
		ClientCA:             t("client-ca"),
		RequestHeaderCA:      t("request-header-ca"),
		EtcdCA:               e("server-ca"),
		KubeletServingCA:     t("kubelet-serving-ca"),
		APIServiceCA:         t("apiservice-ca"),
		MetricsServing:       t("serving-metrics-server"),
		KubeletCABundle:      l.TLSFile("kubelet-ca-bundle.crt"),
		ClientSigner:         l.TLSFile("client-ca-signer.crt"),
		KubeletServingSigner: l.TLSFile("kubelet-serving-ca-signer.crt"),
		APIServerServing:     t("serving-kube-apiserver"),
		CMServing:            t("serving-kube-controller-manager"),
		SchedulerServing:     t("serving-kube-scheduler"),
		Admin:                t("client-admin"),
		SuperAdmin:           t("client-super-admin"),
		ControllerManager:    t("client-controller"),
		Scheduler:            t("client-scheduler"),
		APIServerKubelet:     t("client-kube-apiserver"),
		AuthProxy:            t("client-auth-proxy"),
		ApproverClient:       t("client-csr-approver"),
		TokenClient:          t("client-join-token"),
		NodeHostsClient:      t("client-nodehosts"),
		RootCAClient:         t("client-root-ca-publisher"),
		FlannelPeerClient:    t("client-flannel-peer"),
		EtcdServer:           e("server-client"),
		EtcdPeer:             e("peer-server-client"),
		EtcdClient:           e("client"),
		ServiceKey:           l.TLSFile("service.key"),
		ServicePub:           l.TLSFile("service.pub"),
		SASigner:             filepath.Join(l.Run, "sa", "sock"), // short: a socket's path is at most 107 bytes
		PKILock:              l.TLSFile(".lock"),
		RotateRequest:        l.TLSFile("rotate-request.json"),
		RotateResult:         l.TLSFile("rotate-result.json"),
		AdminKubeconfig:      l.CredFile("admin.kubeconfig"),
		SuperAdminKubeconfig: l.CredFile("super-admin.kubeconfig"),
		AdminBindingMarker:   l.CredFile("admin-binding-made"),
		CMKubeconfig:         l.CredFile("controller.kubeconfig"),
		SchedulerKubeconfig:  l.CredFile("scheduler.kubeconfig"),
		EncryptionConfig:     l.CredFile("encryption-config.json"),
		RecoveryKey:          l.CredFile("recovery-key"),
		AuthnConfig:          l.CredFile("authentication-config.yaml"),
		AdmissionConfig:      l.CredFile("admission-config.yaml"),
		AuditPolicy:          l.CredFile("audit-policy.yaml"),
		AuditLog:             filepath.Join(l.Logs(), "audit.log"),
	}
}

// EtcdClientTLS is what a client of the cluster's etcd presents and
// trusts: the server's etcd client certificate and the etcd CA.
func (c Creds) EtcdClientTLS() etcd.ClientTLS {
	return etcd.ClientTLS{CAFile: c.EtcdCA.Cert(), CertFile: c.EtcdClient.Cert(), KeyFile: c.EtcdClient.Key()}
}

// LocalEtcd is a client of this server's own etcd member, with its etcd
// client certificate.
func (c Creds) LocalEtcd(log *slog.Logger) (*etcd.Cluster, error) {
	return etcd.Dial([]string{etcd.ClientURL()}, c.EtcdClientTLS(), log)
}
