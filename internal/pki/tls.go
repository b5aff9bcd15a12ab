package pki

import cliflag "k8s.io/component-base/cli/flag"

// TLSMinVersion and CipherSuites are every listener's TLS policy (the
// apiserver, controller-manager, scheduler, kubelet and etcd): TLS 1.2 or
// later with the ECDHE/AEAD suites of the CIS benchmark; Go chooses the TLS
// 1.3 suites itself. TLSMinVersion is in the components' flag syntax.
const TLSMinVersion = "VersionTLS12"

// CipherSuites are the TLS 1.2 suites allowed, by their Go names.
func CipherSuites() []string {
	return []string{
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
	}
}

// CipherSuiteIDs are CipherSuites as crypto/tls numbers them, for
// monokube's own listeners (the components' flag parser reads the names).
func CipherSuiteIDs() ([]uint16, error) { return cliflag.TLSCipherSuites(CipherSuites()) }
