package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/pki"
)

// Discovery is what a joining node learns and verifies before it writes
// anything: the server, the CA it proved with the token, and the cluster
// settings.
type Discovery struct {
	Server   string
	CA       []byte // PEM
	Settings identity.ClusterSettings
}

// Patience bounds how long Discover waits for a server that may just be
// starting, and for the bootstrap signer to sign a fresh token.
type Patience struct {
	Unreachable time.Duration
	Unsigned    time.Duration
}

// DefaultPatience suits a server started at the same time as the agent.
func DefaultPatience() Patience {
	return Patience{Unreachable: 2 * time.Minute, Unsigned: 30 * time.Second}
}

// Discover fetches kube-public/cluster-info from server anonymously, checks
// that it is signed with the token's secret and that its CA matches the
// token's pin, fetches it again over TLS verified by that CA, and reads the
// cluster settings with the token. Each failure says which check failed.
func Discover(ctx context.Context, server string, t Token, p Patience, log *slog.Logger) (Discovery, error) {
	cm, err := signedClusterInfo(ctx, server, t, p, log)
	if err != nil {
		return Discovery{}, err
	}
	kubeconfig := cm.Data[bootstrapapi.KubeConfigKey]
	ca, err := pinnedCA(kubeconfig, t, server)
	if err != nil {
		return Discovery{}, err
	}
	verified := &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: ca}, Timeout: 10 * time.Second}
	again, err := getClusterInfo(ctx, verified)
	if err != nil || again.Data[bootstrapapi.KubeConfigKey] != kubeconfig {
		return Discovery{}, fmt.Errorf("cluster-info changed or failed over a verified connection to %s (%w): try again", server, err)
	}
	settings, err := readSettings(ctx, server, ca, t)
	if err != nil {
		return Discovery{}, err
	}
	return Discovery{Server: server, CA: ca, Settings: settings}, nil
}

// pinnedCA returns, as PEM, the CA of cluster-info's kubeconfig that the
// token pins and those it vouches for (Token.TrustedCAs: while the server
// CA is rotated, a token made before pins the old CA, and the bundle holds
// the old one's certificate of the new). The rest of the bundle is
// dropped: whoever knows the token secret can sign a cluster-info.
func pinnedCA(kubeconfig string, t Token, server string) ([]byte, error) {
	cfg, err := clientcmd.Load([]byte(kubeconfig))
	if err != nil || len(cfg.Clusters) != 1 {
		return nil, fmt.Errorf("the server's cluster-info is malformed (%w): is %s a monokube server?", err, server)
	}
	var bundle []byte
	for _, c := range cfg.Clusters {
		bundle = c.CertificateAuthorityData
	}
	certs, err := certutil.ParseCertsPEM(bundle)
	var cas []*x509.Certificate
	if err == nil {
		cas = t.TrustedCAs(certs)
	}
	if cas == nil {
		return nil, fmt.Errorf("the server's CA does not match the token's CA hash %s: %s is not the cluster the token was made for, "+
			"its CA was rotated since the token was made (make a new token on a server: `monokube token create`), "+
			"or someone is in between; check --server and copy the token again", t.CAHash, server)
	}
	return pki.BundlePEM(cas...), nil
}

// signedClusterInfo waits for the server and for the token's signature.
func signedClusterInfo(ctx context.Context, server string, t Token, p Patience, log *slog.Logger) (*corev1.ConfigMap, error) {
	start, delay := time.Now(), time.Second
	for {
		cm, err := unverifiedClusterInfo(ctx, server)
		switch {
		case err != nil && time.Since(start) > p.Unreachable:
			return nil, fmt.Errorf("cannot reach the server at %s after %s: %w; check --server, the network and that the server runs", server, p.Unreachable, err)
		case err != nil:
			log.Info("waiting for the server", "server", server, "err", err)
		default:
			sig, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+t.ID]
			if ok && jws.DetachedTokenIsValid(sig, cm.Data[bootstrapapi.KubeConfigKey], t.ID, t.Secret) {
				return cm, nil
			}
			if ok {
				return nil, errors.New("the token's secret is wrong: the server signs cluster-info for this token id with another secret; copy the token again")
			}
			if time.Since(start) > p.Unsigned {
				return nil, fmt.Errorf("the server does not know token %s (it is wrong, expired or deleted): create one on the server with `monokube token create`", t.ID)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// maxClusterInfo bounds what is read from a server not yet trusted: a real
// cluster-info is a few KiB.
const maxClusterInfo = 1 << 20

// unverifiedClusterInfo fetches cluster-info without verifying the server,
// reading at most maxClusterInfo bytes: nothing in it is trusted before its
// signature and CA pin are checked.
func unverifiedClusterInfo(ctx context.Context, server string) (*corev1.ConfigMap, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+control.ClusterInfoPath, nil)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", server, err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // checked by signature and pin
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxClusterInfo+1))
	switch {
	case err != nil:
		return nil, err
	case len(body) > maxClusterInfo:
		return nil, fmt.Errorf("cluster-info from %s is larger than %d bytes: not a monokube server", server, maxClusterInfo)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("cluster-info from %s: %s", server, resp.Status)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, fmt.Errorf("cluster-info from %s is not a ConfigMap: %w", server, err)
	}
	return &cm, nil
}

func getClusterInfo(ctx context.Context, rc *rest.Config) (*corev1.ConfigMap, error) {
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return c.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
}

// readSettings reads and decodes the cluster settings as the token.
func readSettings(ctx context.Context, server string, ca []byte, t Token) (identity.ClusterSettings, error) {
	c, err := kubernetes.NewForConfig(BootstrapConfig(server, ca, t))
	if err != nil {
		return identity.ClusterSettings{}, fmt.Errorf("client of %s: %w", server, err)
	}
	cm, err := c.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, SettingsConfigMap, metav1.GetOptions{})
	if apierrors.IsUnauthorized(err) {
		return identity.ClusterSettings{}, fmt.Errorf("the server refuses token %s (expired or deleted): create one with `monokube token create`", t.ID)
	}
	if err != nil {
		return identity.ClusterSettings{}, fmt.Errorf("read cluster settings from %s: %w", server, err)
	}
	s, err := identity.DecodeClusterSettings(cm.Data)
	if err != nil {
		return identity.ClusterSettings{}, fmt.Errorf("the cluster settings %s/%s from %s are invalid, so this node cannot join; check that --server names a monokube server: %w",
			metav1.NamespaceSystem, SettingsConfigMap, server, err)
	}
	return s, nil
}

// BootstrapConfig is a client of server that trusts ca and authenticates
// with the token.
func BootstrapConfig(server string, ca []byte, t Token) *rest.Config {
	return &rest.Config{Host: server, BearerToken: t.Bootstrap(), TLSClientConfig: rest.TLSClientConfig{CAData: bytes.Clone(ca)}, Timeout: 10 * time.Second}
}
