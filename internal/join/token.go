// Package join is how a machine joins a monokube cluster, built from
// upstream parts the way kubeadm does it: bootstrap tokens stored as
// bootstrap.kubernetes.io/token Secrets (the apiserver authenticates them,
// the token cleaner removes expired ones), the public kube-public/cluster-info
// ConfigMap signed per token by the bootstrap signer, and a join token that
// also pins the cluster CA, so a joining node trusts the server only if it
// knows the token secret and holds the pinned CA.
package join

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"

	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/monokube/monokube/internal/pki"
)

// tokenPrefix marks a monokube join token and its format version.
const tokenPrefix = "mk1"

// Token is a join token: the CA pin and a bootstrap token.
type Token struct {
	CAHash string // "sha256:" + hex SHA-256 of the CA's SubjectPublicKeyInfo
	ID     string // bootstrap token id, [a-z0-9]{6}
	Secret string // bootstrap token secret, [a-z0-9]{16}
}

// String renders the token as users pass it to --token:
// mk1::sha256:<hex>::<id>.<secret>.
func (t Token) String() string {
	return tokenPrefix + "::" + t.CAHash + "::" + bootstraputil.TokenFromIDAndSecret(t.ID, t.Secret)
}

// Bootstrap is the id.secret part the apiserver authenticates.
func (t Token) Bootstrap() string { return bootstraputil.TokenFromIDAndSecret(t.ID, t.Secret) }

// ParseToken parses a join token, saying what is wrong with a bad one.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), "::")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("--token is not a monokube join token (want %s::sha256:<hex>::<id>.<secret>): copy it from the server's <data-dir>/server/token or `monokube token create`", tokenPrefix)
	}
	hash := strings.ToLower(parts[1])
	if h, ok := strings.CutPrefix(hash, "sha256:"); !ok || len(h) != 64 || !isHex(h) {
		return Token{}, fmt.Errorf("--token: the CA hash %q is not sha256:<64 hex digits>: the token was cut or altered; copy it again", parts[1])
	}
	if !bootstraputil.IsValidBootstrapToken(parts[2]) {
		return Token{}, fmt.Errorf("--token: %q is not a bootstrap token (<6 [a-z0-9]>.<16 [a-z0-9]>): the token was cut or altered; copy it again", parts[2])
	}
	id, secret, _ := strings.Cut(parts[2], ".")
	return Token{CAHash: hash, ID: id, Secret: secret}, nil
}

// NewToken makes a fresh random token pinning ca.
func NewToken(ca *x509.Certificate) (Token, error) {
	bt, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return Token{}, fmt.Errorf("generate join token: %w", err)
	}
	id, secret, _ := strings.Cut(bt, ".")
	return Token{CAHash: CAHash(ca), ID: id, Secret: secret}, nil
}

// CAHash is the pin of a CA certificate: "sha256:" and the hex SHA-256 of
// its SubjectPublicKeyInfo, as kubeadm's --discovery-token-ca-cert-hash.
func CAHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PinnedCA returns the one certificate of certs that t pins, or nil. The
// rest of a bundle is never trusted: whoever knows the token secret can sign
// a cluster-info that adds a CA of their own beside the real one.
func (t Token) PinnedCA(certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if subtle.ConstantTimeCompare([]byte(CAHash(c)), []byte(t.CAHash)) == 1 {
			return c
		}
	}
	return nil
}

// TrustedCAs returns the CA of certs that t pins, first, and each other
// CA of certs that the pinned one vouches for (pki.Vouches: a certificate
// of its subject and key, signed by the pinned CA, is in certs too): a
// CA rotation's new server CA, for a token made before the rotation. Any
// other certificate is dropped, as in PinnedCA. Nil if t pins none.
func (t Token) TrustedCAs(certs []*x509.Certificate) []*x509.Certificate {
	pinned := t.PinnedCA(certs)
	if pinned == nil {
		return nil
	}
	out := []*x509.Certificate{pinned}
	for _, c := range certs {
		if c.Equal(pinned) || !c.IsCA || c.CheckSignatureFrom(c) != nil { // only self-signed CAs
			continue
		}
		for _, cross := range certs {
			if pki.Vouches(cross, pinned, c) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
