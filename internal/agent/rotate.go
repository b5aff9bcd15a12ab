package agent

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/certificate"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/keyutil"

	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/kubelet"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/pki"
)

// RotateKubelet has a joined node's kubelet certificates re-issued now:
// it requests a client and a serving certificate, each with a new key,
// through the cluster's CSR signers with the kubelet's current
// credentials (the renewals the kubelet itself makes, approved the same
// way), and writes them into the kubelet's certificate store. The running
// kubelet keeps the ones it holds in memory until it restarts; kube-proxy
// and the overlay, which read the client certificate's file, follow
// within minutes. The serving certificate is stored with servingChain
// after it (identity.ServingChain; nil for none). It returns the files
// written.
func RotateKubelet(ctx context.Context, l datadir.Layout, servingChain []byte) ([]string, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", node.NewAgentCreds(l).KubeletKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("the kubelet's kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	store, err := kubeletStore(l, "kubelet-client")
	if err != nil {
		return nil, err
	}
	current, err := store.Current()
	if err != nil {
		return nil, fmt.Errorf("the kubelet's current client certificate: %w", err)
	}
	name, ok := strings.CutPrefix(current.Leaf.Subject.CommonName, "system:node:")
	if !ok {
		return nil, fmt.Errorf("the kubelet's client certificate is for %q, not a node", current.Leaf.Subject.CommonName)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read node %s (is the agent running?): %w", name, err)
	}
	subject := pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}
	requests := []struct {
		prefix, signer string
		tmpl           x509.CertificateRequest
		usages         []certificatesv1.KeyUsage
		chain          []byte
	}{
		{"kubelet-client", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: subject},
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, nil},
		{"kubelet-server", certificatesv1.KubeletServingSignerName, servingRequest(subject, n.Status.Addresses),
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}, servingChain},
	}
	var files []string
	for _, r := range requests {
		file, err := requestInto(ctx, client, l, r.prefix, r.signer, &r.tmpl, r.usages, r.chain)
		if err != nil {
			return files, err
		}
		files = append(files, file)
	}
	return files, nil
}

// servingRequest names what the kubelet's serving certificate names: the
// node's host names and addresses, as the approver checks them.
func servingRequest(subject pkix.Name, addrs []corev1.NodeAddress) x509.CertificateRequest {
	tmpl := x509.CertificateRequest{Subject: subject}
	for _, a := range addrs {
		switch a.Type {
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			tmpl.DNSNames = append(tmpl.DNSNames, a.Address)
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			if ip := net.ParseIP(a.Address); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		}
	}
	return tmpl
}

// requestInto requests a certificate for tmpl from signer with a new key,
// waits for it (approved and signed within a minute) and stores the pair,
// the certificate followed by chain, as the kubelet's current one of
// prefix.
func requestInto(ctx context.Context, client kubernetes.Interface, l datadir.Layout, prefix, signer string,
	tmpl *x509.CertificateRequest, usages []certificatesv1.KeyUsage, chain []byte) (string, error) {
	key, err := pki.NewKey()
	if err != nil {
		return "", err
	}
	der, err := x509.CreateCertificateRequest(nil, tmpl, key)
	if err != nil {
		return "", err
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	name, uid, err := csr.RequestCertificateWithContext(ctx, client, csrPEM, "", signer, nil, usages, key)
	if err != nil {
		return "", fmt.Errorf("request a %s certificate: %w", prefix, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	certPEM, err := csr.WaitForCertificate(wctx, client, name, uid)
	if err != nil {
		return "", fmt.Errorf("%s certificate (CSR %s): %w", prefix, name, err)
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return "", err
	}
	store, err := kubeletStore(l, prefix)
	if err != nil {
		return "", err
	}
	cert, err := store.Update(append(certPEM, chain...), keyPEM)
	if err != nil {
		return "", fmt.Errorf("store the %s certificate: %w", prefix, err)
	}
	file := fmt.Sprintf("%s/%s-current.pem", kubelet.CertDir(l.KubeletRoot()), prefix)
	if cert.Leaf != nil {
		file += " (until " + cert.Leaf.NotAfter.UTC().Format(time.RFC3339) + ")"
	}
	return file, nil
}

// kubeletStore is the kubelet's store of its prefix pairs, the one the
// kubelet itself reads and rotates.
func kubeletStore(l datadir.Layout, prefix string) (certificate.FileStore, error) {
	dir := kubelet.CertDir(l.KubeletRoot())
	store, err := certificate.NewFileStore(prefix, dir, dir, "", "")
	if err != nil {
		return nil, fmt.Errorf("the kubelet's certificates in %s: %w", dir, err)
	}
	return store, nil
}
