package identity

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/snapshot"
)

// Identity is a cluster's identity as one server holds it: where each of
// its files lives and its certificate authorities, loaded. It is made by
// Init or Load and not changed afterwards.
type Identity struct {
	// Creds names every file of the identity and every credential derived
	// from it, where the control plane reads them.
	Creds control.Creds
	// Node names the credentials of the server's own node; nil after Load
	// and on a server that runs no node (--disable-agent).
	Node *NodeFiles
	// CAs are the certificate authorities.
	CAs CAs
	// MadeRecoveryKey is the recovery key if Init made it: this start is
	// the cluster's first (ShowRecoveryKey).
	MadeRecoveryKey *snapshot.Key

	clientCA []byte         // the client CA's certificate file, as written
	layout   datadir.Layout // where it was made or read
}

// CAs are the cluster's certificate authorities, each certificate with its
// key (see the package comment for what each one signs).
type CAs struct {
	Server         *pki.KeyPair
	Client         *pki.KeyPair
	RequestHeader  *pki.KeyPair
	Etcd           *pki.KeyPair
	KubeletServing *pki.KeyPair
	APIService     *pki.KeyPair
}

// NodeFiles names a node's credentials: those Init issues to the server's
// own node, and those the node's kubelet and kube-proxy read (node.Creds
// embeds them).
type NodeFiles struct {
	ClientCA            string    // copy of the client CA, which the kubelet trusts
	KubeletServing      pki.Files // signed by the kubelet-serving CA
	KubeletClient       pki.Files // system:node:<name>
	KubeProxyClient     pki.Files // system:kube-proxy
	KubeletKubeconfig   string
	KubeProxyKubeconfig string
}

// NodeFilesAt lays out a node's credentials under l.
func NodeFilesAt(l datadir.Layout) NodeFiles {
	return NodeFiles{
		ClientCA:            l.AgentTLSFile("client-ca.crt"),
		KubeletServing:      pki.Files(l.AgentTLSFile("serving-kubelet")),
		KubeletClient:       pki.Files(l.AgentTLSFile("client-kubelet")),
		KubeProxyClient:     pki.Files(l.AgentTLSFile("client-kube-proxy")),
		KubeletKubeconfig:   l.AgentFile("kubelet.kubeconfig"),
		KubeProxyKubeconfig: l.AgentFile("kube-proxy.kubeconfig"),
	}
}

// Init makes or loads the identity when a server starts on l: it keeps
// every key that exists and creates those that do not, issues (or keeps)
// the leaf certificates of cfg's control plane and, if own is not nil, of
// the server's own node, and writes the encryption and authentication
// configs and the kubeconfigs. Over etcd data it refuses to make anew a
// key that data depends on (a CA of servers, clients or etcd, the
// service-account key, the encryption key): it says what is missing and
// what to do instead.
//
// Init writes into the directories that datadir.Layout.EnsureServer and,
// for own, EnsureAgent make; it creates any that are missing 0700.
func Init(cfg *config.Server, l datadir.Layout, own *NodeFiles, log *slog.Logger) (*Identity, error) {
	c := control.NewCreds(l)
	if err := checkKept(l, c); err != nil {
		return nil, err
	}
	unlock, err := lockPKI(c)
	if err != nil {
		return nil, err
	}
	defer unlock()
	req := readRotateRequest(c, log)
	cas, issued, err := ensurePKI(cfg, c, own, issue{life: cfg.Certs.Lifetime, now: time.Now(), force: req.Services}, log)
	answerRotate(c, req, certFiles(issued), err, log)
	if err != nil {
		return nil, err
	}
	if err := ensureEncryptionConfig(c.EncryptionConfig); err != nil {
		return nil, err
	}
	made, err := ensureRecoveryKey(c, log)
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFile(c.AuthnConfig, control.AuthnConfig(), 0o600); err != nil {
		return nil, err
	}
	id, err := newIdentity(l, c, cas, own)
	if err != nil {
		return nil, err
	}
	if err := id.writeKubeconfigs(cfg); err != nil {
		return nil, err
	}
	id.MadeRecoveryKey = made
	return id, nil
}

// Load reads the complete identity of the server whose data dir is l,
// writing nothing: for what runs beside a server (`monokube token`) and
// what copies the identity (a snapshot bundle). Every key of the identity
// must be there, each certificate authority with its certificate;
// otherwise the error lists what is missing and what to do.
func Load(l datadir.Layout) (*Identity, error) {
	c := control.NewCreds(l)
	files := identityFiles(c)
	switch missing := missingFiles(files); {
	case len(missing) == len(files) && !l.HasEtcdData():
		return nil, fmt.Errorf("no cluster identity in %s: not a server's data dir, or its server never started (`monokube server` makes the identity at its first start)", l.Server())
	case len(missing) > 0:
		return nil, missingError(l, missing)
	}
	cas := map[pki.Files]*pki.KeyPair{}
	for _, a := range authorities(c) {
		kp, err := pki.Load(a.files)
		if err != nil {
			return nil, fmt.Errorf("load certificate authority %s: %w", a.files.Cert(), err)
		}
		cas[a.files] = kp
	}
	return newIdentity(l, c, cas, nil)
}

// A second server of a cluster takes the identity from the cluster
// instead of making one: DecodeBundle and Bundle.Write put the first
// server's six CAs, service-account key and encryption key in its data
// dir (fetched with a server token: join.FetchIdentity), then Init makes
// this server's leaves and kubeconfigs from them. A server must never make
// an identity of its own where one exists: two servers of one etcd with
// different keys lose each other's Secrets and tokens.

// newIdentity gathers what Init and Load made or read.
func newIdentity(l datadir.Layout, c control.Creds, cas map[pki.Files]*pki.KeyPair, own *NodeFiles) (*Identity, error) {
	clientCA, err := os.ReadFile(c.ClientCA.Cert())
	if err != nil {
		return nil, fmt.Errorf("read client CA: %w", err)
	}
	return &Identity{
		Creds: c,
		Node:  own,
		CAs: CAs{
			Server: cas[c.ServerCA], Client: cas[c.ClientCA], RequestHeader: cas[c.RequestHeaderCA],
			Etcd: cas[c.EtcdCA], KubeletServing: cas[c.KubeletServingCA], APIService: cas[c.APIServiceCA],
		},
		clientCA: clientCA,
		layout:   l,
	}, nil
}

// ClientCAPEM is the client CA's certificate file as it is now (both CAs
// during a rotation): what the kubelets of the cluster trust. It is the
// file as Init found it if the file cannot be read any more.
func (id *Identity) ClientCAPEM() []byte {
	if data, err := os.ReadFile(id.Creds.ClientCA.Cert()); err == nil {
		return data
	}
	return bytes.Clone(id.clientCA)
}
