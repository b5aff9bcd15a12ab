package pki

import (
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig renders a kubeconfig for server that authenticates with the
// client certificate kp and trusts caPEM. The credentials are embedded so the
// file stands alone (it can be copied off the machine).
func Kubeconfig(server, name string, caPEM []byte, kp *KeyPair) ([]byte, error) {
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: CertPEM(kp.Cert), ClientKeyData: keyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}

// KubeconfigFiles renders a kubeconfig for server that names the files of
// its client certificate f and of the CA it trusts instead of embedding
// them: client-go reads them again when they change, so a component that
// uses it picks up a renewed certificate without a restart.
func KubeconfigFiles(server, name, caFile string, f Files) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: f.Cert(), ClientKey: f.Key()}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}
