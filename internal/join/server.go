package join

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	bootstrapsecrets "k8s.io/cluster-bootstrap/util/secrets"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/lifecycle"
)

// LoadServerToken reads the server's own join token from path. At first
// start there is none yet: it returns a new one pinning ca, and fresh, and
// the ServerToken component stores it in the cluster, then writes path.
//
// A token that pins another CA of trusted (the CAs of the server CA's
// file: a CA rotation's old one) is pinned to ca instead, in the file
// too: the token's secret stays, and the nodes that join with it trust
// the new CA.
func LoadServerToken(path string, ca *x509.Certificate, trusted []*x509.Certificate) (t Token, fresh bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t, err := NewToken(ca)
		return t, true, err
	}
	if err != nil {
		return Token{}, false, fmt.Errorf("read join token: %w", err)
	}
	if t, err = ParseToken(string(data)); err != nil {
		return Token{}, false, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case t.CAHash == CAHash(ca):
		return t, false, nil
	case t.PinnedCA(trusted) == nil:
		return Token{}, false, fmt.Errorf("%s pins another CA than this server's: remove it to have a new one made", path)
	}
	t.CAHash = CAHash(ca)
	if err := fsutil.WriteFile(path, []byte(t.String()+"\n"), 0o600); err != nil {
		return Token{}, false, fmt.Errorf("pin the join token to the new server CA: %w", err)
	}
	return t, false, nil
}

// serverTokenDescription marks the server's own tokens among the join
// tokens, so stale ones can be found again.
const serverTokenDescription = "the server's join token, <data-dir>/server/token"

// ServerToken keeps the server's own join token: in the cluster as a
// bootstrap-token Secret and in the token file, Secret first, so the file
// only ever names a token the cluster knows. With a TTL, a token is
// replaced by a new one at half its life: the file always holds a token
// that works for at least TTL/2, and the one it replaced works until it
// expires. Never-expiring server tokens other than the current one (left
// by a crash between Secret and file, or by a TTL set later) are deleted.
type ServerToken struct {
	client kubernetes.Interface
	ca     *x509.Certificate
	caFile string
	token  Token
	fresh  bool // token is not stored yet
	ttl    time.Duration
	path   string
	log    *slog.Logger
	now    func() time.Time
	warned bool
	// unwritten: token is stored in the cluster but not yet in the file
	// (the write failed); the next check writes it, never a new token.
	unwritten bool
}

// ServerTokenConfig is what the ServerToken component needs.
type ServerTokenConfig struct {
	CA *x509.Certificate // the CA tokens pin
	// CAFile, if set, is the server CA's file, read again for each new
	// token: after a CA rotation new tokens pin the CA that signs then.
	CAFile string
	Token  Token         // the current token, from LoadServerToken
	Fresh  bool          // Token is new: store it first
	TTL    time.Duration // 0: never expires
	Path   string        // the token file
}

// NewServerToken returns the component that keeps cfg's token.
func NewServerToken(client kubernetes.Interface, cfg ServerTokenConfig, log *slog.Logger) *ServerToken {
	return &ServerToken{client: client, ca: cfg.CA, caFile: cfg.CAFile, token: cfg.Token, fresh: cfg.Fresh, ttl: cfg.TTL,
		path: cfg.Path, log: log, now: time.Now}
}

var _ lifecycle.Component = (*ServerToken)(nil)

// signingCA is the CA a new token pins: the first of CAFile's, or CA.
func (s *ServerToken) signingCA() *x509.Certificate {
	if s.caFile == "" {
		return s.ca
	}
	data, err := os.ReadFile(s.caFile)
	if err != nil {
		return s.ca
	}
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		return s.ca
	}
	return certs[0]
}

// Name implements lifecycle.Component.
func (*ServerToken) Name() string { return "join-token" }

// recheck bounds how long the current token goes unchecked (an admin may
// delete it, the clock may jump).
const recheck = 10 * time.Minute

// Run stores a fresh token, then keeps the token current until ctx ends,
// retrying while the apiserver is unreachable.
func (s *ServerToken) Run(ctx context.Context) error {
	if s.fresh {
		// store fails only at the file, which check then retries.
		if err := s.store(ctx, s.token); err != nil {
			s.log.Warn("cannot write the join token file yet; retrying", "err", err)
		}
	}
	for {
		wait, err := s.check(ctx)
		if err != nil {
			s.log.Warn("cannot check the join token yet; retrying", "err", err)
			wait = 5 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// check writes a token file that failed before, replaces the current
// token when it is due, ends stale server tokens (sweep), and says when to
// look again.
func (s *ServerToken) check(ctx context.Context) (time.Duration, error) {
	if s.unwritten {
		if err := s.writeFile(s.token); err != nil {
			return 0, err
		}
	}
	sec, err := s.client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, bootstraputil.BootstrapTokenSecretName(s.token.ID), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec, err = nil, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read join token %s: %w", s.token.ID, err)
	}
	wait := s.due(sec)
	if wait <= 0 {
		t, err := NewToken(s.signingCA())
		if err != nil {
			return 0, err
		}
		old := s.token.ID
		if err := s.store(ctx, t); err != nil || ctx.Err() != nil {
			return 0, err
		}
		s.log.Info("replaced the join token; the one before works until it expires", "old", old, "new", t.ID, "ttl", s.ttl)
		wait = s.ttl / 2
	}
	if err := s.sweep(ctx); err != nil {
		return 0, err
	}
	return min(wait, recheck), nil
}

// due is how long until the current token, stored as sec (nil when
// missing), must be replaced; 0 or less means now.
func (s *ServerToken) due(sec *corev1.Secret) time.Duration {
	if sec == nil && s.ttl == 0 {
		// Deleted by `monokube token delete` (revoked for good) or expired.
		if !s.warned {
			s.log.Warn("the server's join token is not in the cluster (deleted, or expired): agents cannot join with it; `monokube token create` makes another, or remove the token file and restart", "file", s.path)
			s.warned = true
		}
		return recheck
	}
	if sec == nil {
		return 0
	}
	exp := bootstrapsecrets.GetData(sec, bootstrapapi.BootstrapTokenExpirationKey)
	if exp == "" {
		if s.ttl == 0 {
			return recheck
		}
		return 0 // never expires, yet a TTL is set
	}
	if s.ttl == 0 {
		return 0 // expires, yet none should
	}
	at, err := time.Parse(time.RFC3339, exp)
	left := at.Sub(s.now())
	if err != nil || left > s.ttl {
		return 0 // unreadable, or longer than the TTL now set
	}
	return left - s.ttl/2
}

// spec is how the server's own tokens are stored: agent tokens, as the
// file is what agents are given.
func (s *ServerToken) spec() Spec {
	return Spec{Role: RoleAgent, TTL: s.ttl, Description: serverTokenDescription}
}

// store puts t in the cluster, retrying while the apiserver settles, makes
// it the current token, then writes the token file. It returns nil early
// when ctx ends.
func (s *ServerToken) store(ctx context.Context, t Token) error {
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := CreateSecret(ctx, s.client, t, s.spec(), s.now()); err != nil {
			s.log.Warn("cannot store the join token yet; retrying", "err", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil // stopped before the apiserver took it
	}
	s.token = t
	return s.writeFile(t)
}

// writeFile writes t to the token file; on failure the next check retries.
func (s *ServerToken) writeFile(t Token) error {
	if err := fsutil.WriteFile(s.path, []byte(t.String()+"\n"), 0o600); err != nil {
		s.unwritten = true
		return fmt.Errorf("write join token: %w", err)
	}
	s.unwritten = false
	s.log.Info("join token written; agents join with it", "file", s.path, "id", t.ID)
	return nil
}

// sweep ends the server's never-expiring tokens other than the current
// one: with a TTL they expire one TTL from now, without one they are
// deleted (crash leftovers nobody knows); expiring ones are left to work
// out their life.
func (s *ServerToken) sweep(ctx context.Context) error {
	secrets, err := s.client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{
		FieldSelector: "type=" + string(bootstrapapi.SecretTypeBootstrapToken),
	})
	if err != nil {
		return fmt.Errorf("list join tokens: %w", err)
	}
	for i := range secrets.Items {
		sec := &secrets.Items[i]
		id, ok := bootstrapsecrets.ParseName(sec.Name)
		if !ok || id == s.token.ID || sec.Type != bootstrapapi.SecretTypeBootstrapToken ||
			bootstrapsecrets.GetData(sec, bootstrapapi.BootstrapTokenDescriptionKey) != serverTokenDescription ||
			bootstrapsecrets.GetData(sec, bootstrapapi.BootstrapTokenExpirationKey) != "" {
			continue
		}
		if s.ttl > 0 {
			// The one before a TTL was set (an upgrade): scripts may hold
			// it, so it lives one TTL more instead of dying at once.
			if err := s.expire(ctx, sec); err != nil {
				return err
			}
			s.log.Info("a server join token that would never expire now expires", "id", id, "in", s.ttl)
			continue
		}
		if err := Delete(ctx, s.client, id); err != nil {
			return err
		}
		s.log.Info("deleted a stale server join token that would never expire", "id", id)
	}
	return nil
}

// expire gives sec an expiry one TTL from now.
func (s *ServerToken) expire(ctx context.Context, sec *corev1.Secret) error {
	sec = sec.DeepCopy()
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(s.now().Add(s.ttl).UTC().Format(time.RFC3339))
	if _, err := s.client.CoreV1().Secrets(metav1.NamespaceSystem).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set the expiry of join token %s: %w", sec.Name, err)
	}
	return nil
}
