package satoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
	externaljwtv1 "k8s.io/externaljwt/apis/v1"

	"github.com/monokube/monokube/internal/lifecycle"
)

// Token lifetimes the signer allows: a year, what kube-apiserver gives
// extended tokens with keys of its own.
const maxTokenLife = 365 * 24 * time.Hour

// refreshHint is how often kube-apiserver fetches the verifying keys.
const refreshHint = 10 * time.Second

// Signer is the external JWT signer kube-apiserver uses: it signs with the
// server's current key and hands out the keys that verify, reading the
// key files again when they change.
type Signer struct {
	socket, keyFile, pubFile string
	log                      *slog.Logger

	mu       sync.Mutex
	set      Set
	loaded   string    // Hash of the files of set
	loadedAt time.Time // when set was read
	now      func() time.Time

	externaljwtv1.UnimplementedExternalJWTSignerServer
}

var _ lifecycle.Component = (*Signer)(nil)

// NewSigner returns the signer of the key files, to serve on socket.
func NewSigner(socket, keyFile, pubFile string, log *slog.Logger) *Signer {
	return &Signer{socket: socket, keyFile: keyFile, pubFile: pubFile, log: log, now: time.Now}
}

// Name implements lifecycle.Component.
func (*Signer) Name() string { return "service-account-signer" }

// maxSocketPath is the longest path a Unix socket may have on Linux.
const maxSocketPath = 107

// Run serves on the socket, which only root may open, until ctx ends.
func (s *Signer) Run(ctx context.Context) error {
	if _, err := s.current(); err != nil {
		return err
	}
	if len(s.socket) > maxSocketPath {
		return fmt.Errorf("service-account signer: its socket %s is longer than the %d bytes Linux allows: give a shorter --run-dir", s.socket, maxSocketPath)
	}
	// A directory of its own, only root's: the socket is never open to
	// others, not even between its creation and its chmod.
	if err := os.MkdirAll(filepath.Dir(s.socket), 0o700); err != nil {
		return fmt.Errorf("service-account signer: %w", err)
	}
	if err := os.Chmod(filepath.Dir(s.socket), 0o700); err != nil {
		return fmt.Errorf("service-account signer: %w", err)
	}
	if err := os.Remove(s.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("service-account signer: remove the old socket: %w", err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "unix", s.socket)
	if err != nil {
		return fmt.Errorf("service-account signer: %w", err)
	}
	if err := os.Chmod(s.socket, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("service-account signer: %w", err)
	}
	srv := grpc.NewServer()
	externaljwtv1.RegisterExternalJWTSignerServer(srv, s)
	go func() {
		<-ctx.Done()
		srv.Stop() // the apiserver has stopped before its signer (start order, reversed)
	}()
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("service-account signer: %w", err)
	}
	return nil
}

// Loaded is the Hash of the key files the signer uses.
func (s *Signer) Loaded() (string, error) {
	if _, err := s.current(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loaded, nil
}

// current reads the key files again if they changed; if they do not
// make a set (one written, the other not yet), the last set stays.
func (s *Signer) current() (Set, error) {
	keyPEM, kerr := os.ReadFile(s.keyFile)
	pubPEM, perr := os.ReadFile(s.pubFile)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := errors.Join(kerr, perr); err != nil {
		if s.set.Signer != nil {
			return s.set, nil
		}
		return Set{}, fmt.Errorf("service-account keys: %w", err)
	}
	h := Hash(keyPEM, pubPEM)
	if h == s.loaded {
		return s.set, nil
	}
	set, err := Parse(keyPEM, pubPEM)
	if err != nil {
		if s.set.Signer != nil {
			return s.set, nil
		}
		return Set{}, err
	}
	if s.set.Signer != nil {
		s.log.Info("service-account keys changed", "signing", set.SignerID, "verifying", len(set.Verify))
	}
	s.set, s.loaded, s.loadedAt = set, h, s.now()
	return set, nil
}

// Sign implements the signer: ES256 or RS256 over the header and claims.
func (s *Signer) Sign(_ context.Context, req *externaljwtv1.SignJWTRequest) (*externaljwtv1.SignJWTResponse, error) {
	set, err := s.current()
	if err != nil {
		return nil, err
	}
	alg, err := algorithm(set.Signer)
	if err != nil {
		return nil, err
	}
	header, err := json.Marshal(map[string]string{"alg": alg, "kid": set.SignerID, "typ": "JWT"})
	if err != nil {
		return nil, err
	}
	h64 := base64.RawURLEncoding.EncodeToString(header)
	sig, err := sign(set.Signer, []byte(h64+"."+req.Claims))
	if err != nil {
		return nil, err
	}
	return &externaljwtv1.SignJWTResponse{Header: h64, Signature: base64.RawURLEncoding.EncodeToString(sig)}, nil
}

// FetchKeys implements the signer: every key that verifies now.
func (s *Signer) FetchKeys(context.Context, *externaljwtv1.FetchKeysRequest) (*externaljwtv1.FetchKeysResponse, error) {
	set, err := s.current()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	loadedAt := s.loadedAt
	s.mu.Unlock()
	// The time the keys were read: kube-apiserver tells its listeners of
	// a change when it moves.
	resp := &externaljwtv1.FetchKeysResponse{DataTimestamp: timestamppb.New(loadedAt), RefreshHintSeconds: int64(refreshHint / time.Second)}
	for _, v := range set.Active(s.now()) {
		resp.Keys = append(resp.Keys, &externaljwtv1.Key{KeyId: v.ID, Key: v.DER})
	}
	return resp, nil
}

// Metadata implements the signer.
func (s *Signer) Metadata(context.Context, *externaljwtv1.MetadataRequest) (*externaljwtv1.MetadataResponse, error) {
	return &externaljwtv1.MetadataResponse{MaxTokenExpirationSeconds: int64(maxTokenLife / time.Second)}, nil
}

// algorithm is the JWS algorithm of key.
func algorithm(key crypto.Signer) (string, error) {
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize == 256 {
			return "ES256", nil
		}
	case *rsa.PublicKey:
		return "RS256", nil
	}
	return "", errors.New("the service-account key is neither ECDSA P-256 nor RSA")
}

// sign signs data as JWS does: RSA PKCS#1 v1.5, or ECDSA's r and s as two
// 32-byte numbers, over SHA-256.
func sign(key crypto.Signer, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return key.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	r, sv, err := ecdsa.Sign(rand.Reader, ec, sum[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	sv.FillBytes(out[32:])
	return out, nil
}
