package mirror

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/monokube/monokube/internal/pki"
)

// Port is where every node's mirror listens, on its node IP.
const Port = 5001

// Server serves a Handler to the nodes of the cluster alone, over mutual
// TLS: it presents the node's kubelet serving certificate and wants a
// client certificate of the cluster's client CA whose subject is a node
// (system:node:<name> in system:nodes), as every kubelet holds. The files
// are read again at each handshake, so renewals and CA rotations apply
// without a restart.
type Server struct {
	Addr      string // host:port to listen on
	Cert, Key string // the serving certificate and key
	ClientCA  string // the client CA bundle the peers' certificates must chain to
	Handler   http.Handler
	Log       *slog.Logger
}

// Name implements lifecycle.Component.
func (*Server) Name() string { return "registry-mirror" }

// Run listens on Addr and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("the registry mirror cannot listen on %s: %w (another program holds the port? free it, or start without --embedded-registry)", s.Addr, err)
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: nodesOnly(s.Handler, s.Log), TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelInfo)} // refused handshakes, among others
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(stop) // pulls in flight are cut after 5 s: containerd resumes them elsewhere
	}()
	err = srv.ServeTLS(l, "", "")
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// tlsConfig reads the serving certificate and the client CA at each
// handshake.
func (s *Server) tlsConfig() (*tls.Config, error) {
	suites, err := pki.CipherSuiteIDs()
	if err != nil {
		return nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: suites, ClientAuth: tls.RequireAndVerifyClientCert}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, err := tls.LoadX509KeyPair(s.Cert, s.Key)
			if err != nil {
				return nil, fmt.Errorf("the registry mirror's serving certificate: %w", err)
			}
			data, err := os.ReadFile(s.ClientCA)
			if err != nil {
				return nil, fmt.Errorf("the cluster's client CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("%s holds no certificate", s.ClientCA)
			}
			cfg := base.Clone()
			cfg.Certificates, cfg.ClientCAs = []tls.Certificate{cert}, pool
			return cfg, nil
		},
	}, nil
}

// nodesOnly answers 403 to a client whose certificate is not a node's
// (an admin's or a component's, which the same CA signs), and logs it.
func nodesOnly(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isNode(r.TLS) {
			log.Warn("refused a client that is not a node", "peer", peer(r), "from", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			writeError(w, http.StatusForbidden, "DENIED", "only the cluster's nodes may pull from this mirror")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isNode is whether the verified client certificate of cs names a node.
func isNode(cs *tls.ConnectionState) bool {
	if cs == nil || len(cs.VerifiedChains) == 0 {
		return false
	}
	subject := cs.VerifiedChains[0][0].Subject
	name, ok := strings.CutPrefix(subject.CommonName, "system:node:")
	return ok && name != "" && slices.Contains(subject.Organization, "system:nodes")
}
