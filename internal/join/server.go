package join

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/fsutil"
)

// LoadServerToken reads the server's own join token from path. At first
// start there is none yet: it returns a new one pinning ca, and fresh, and
// the ServerToken component stores it in the cluster, then writes path.
func LoadServerToken(path string, ca *x509.Certificate) (t Token, fresh bool, err error) {
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
	if t.CAHash != CAHash(ca) {
		return Token{}, false, fmt.Errorf("%s pins another CA than this server's: remove it to have a new one made", path)
	}
	return t, false, nil
}

// ServerToken stores a fresh server join token: first its Secret (it never
// expires; `monokube token delete` revokes it for good), then the token
// file, so the file only ever names a token the cluster knows.
type ServerToken struct {
	client kubernetes.Interface
	token  Token
	path   string
	log    *slog.Logger
}

// NewServerToken returns the component for a fresh token t.
func NewServerToken(client kubernetes.Interface, t Token, path string, log *slog.Logger) *ServerToken {
	return &ServerToken{client: client, token: t, path: path, log: log}
}

// Name implements lifecycle.Component.
func (*ServerToken) Name() string { return "join token" }

// Run stores the token, retrying while the apiserver settles, then waits
// for ctx.
func (s *ServerToken) Run(ctx context.Context) error {
	for {
		err := CreateSecret(ctx, s.client, s.token, 0, "the server's join token, <data-dir>/server/token")
		if err == nil {
			break
		}
		s.log.Warn("cannot store the join token yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	if err := fsutil.WriteFile(s.path, []byte(s.token.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("write join token: %w", err)
	}
	s.log.Info("join token written; agents join with it", "file", s.path)
	<-ctx.Done()
	return nil
}
