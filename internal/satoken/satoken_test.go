package satoken

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/client-go/kubernetes/fake"
	externaljwtv1 "k8s.io/externaljwt/apis/v1"

	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/pki"
	"github.com/monokube/monokube/internal/testutil"
)

// newPaths writes a server's key files and encryption config under dir,
// copying those of from if given (servers of one cluster share them).
func newPaths(t *testing.T, from *Paths) Paths {
	t.Helper()
	dir := t.TempDir()
	p := Paths{Key: filepath.Join(dir, "service.key"), Pub: filepath.Join(dir, "service.pub"), EncryptionConfig: filepath.Join(dir, "enc.json")}
	if from == nil {
		if err := pki.EnsureSigningKey(p.Key, p.Pub); err != nil {
			t.Fatal(err)
		}
		key, err := identity.NewEncryptionKey("monokube-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.EncryptionConfig, identity.RenderEncryptionConfig([]identity.EncryptionKey{key}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for src, dst := range map[string]string{from.Key: p.Key, from.Pub: p.Pub, from.EncryptionConfig: p.EncryptionConfig} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func signer(p Paths) *Signer {
	return NewSigner("", p.Key, p.Pub, slog.New(slog.DiscardHandler))
}

// token has s sign claims and returns the JWT.
func token(t *testing.T, s *Signer, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	p64 := base64.RawURLEncoding.EncodeToString(payload)
	resp, err := s.Sign(context.Background(), &externaljwtv1.SignJWTRequest{Claims: p64})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header + "." + p64 + "." + resp.Signature
}

// verifies reports whether tok verifies with one of the keys s hands out,
// found by the token's key ID, as kube-apiserver does it.
func verifies(t *testing.T, s *Signer, tok string) bool {
	t.Helper()
	parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.FetchKeys(context.Background(), &externaljwtv1.FetchKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.Keys {
		if k.KeyId != parsed.Headers[0].KeyID {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		var claims josejwt.Claims
		return parsed.Claims(pub, &claims) == nil && claims.Subject == "system:serviceaccount:default:test"
	}
	return false
}

// A token the signer signs verifies, with go-jose, under the key it hands
// out for the token's key ID; that ID is kube-apiserver's own for the key.
func TestSignerSignsWhatItsKeysVerify(t *testing.T) {
	p := newPaths(t, nil)
	s := signer(p)
	tok := token(t, s, map[string]any{"sub": "system:serviceaccount:default:test", "iss": "https://kubernetes.default.svc"})
	if !verifies(t, s, tok) {
		t.Fatal("the signed token does not verify")
	}
	set, err := Load(p.Key, p.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Verify) != 1 || set.Verify[0].ID != set.SignerID || header(t, tok) != set.SignerID {
		t.Errorf("set %+v", set)
	}
	md, err := s.Metadata(context.Background(), &externaljwtv1.MetadataRequest{})
	if err != nil || md.MaxTokenExpirationSeconds < 600 {
		t.Errorf("metadata %+v, %v", md, err)
	}
}

// A rotation on two servers: a token signed before verifies on both until
// the old key retires, one signed after carries the new key, and both
// servers end with the same files.
func TestRotationTwoServers(t *testing.T) {
	a := newPaths(t, nil)
	b := newPaths(t, &a)
	sa, sb := signer(a), signer(b)
	claims := map[string]any{"sub": "system:serviceaccount:default:test"}
	before := token(t, sa, claims)
	client := testutil.WithVersions(fake.NewClientset())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		syncs := []*Sync{
			{Client: client, Paths: a, Node: "a", Signer: sa, Log: slog.New(slog.DiscardHandler)},
			{Client: client, Paths: b, Node: "b", Signer: sb, Log: slog.New(slog.DiscardHandler)},
		}
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for _, s := range syncs {
				_ = s.Once(context.Background())
			}
		}
	}()
	r := &Rotation{Client: client, Paths: a, KeepOld: time.Hour, Wait: 10 * time.Second, Out: io.Discard, Now: time.Now,
		Servers: func(context.Context) ([]string, error) { return []string{"a", "b"}, nil }}
	err := r.Run(context.Background())
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	after := token(t, sb, claims)
	for name, s := range map[string]*Signer{"a": sa, "b": sb} {
		if !verifies(t, s, before) || !verifies(t, s, after) {
			t.Errorf("server %s: the tokens from before and after the rotation do not both verify", name)
		}
	}
	if header(t, before) == header(t, after) {
		t.Error("the token after the rotation names the old key")
	}
	ka, _ := os.ReadFile(a.Key)
	kb, _ := os.ReadFile(b.Key)
	if string(ka) != string(kb) {
		t.Error("the servers sign with different keys")
	}
	sb.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if verifies(t, sb, before) || !verifies(t, sb, after) {
		t.Error("after the old key retired: the old token still verifies, or the new one does not")
	}
}

// header is the key ID a token names.
func header(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Headers[0].KeyID
}

// A service-account key rotation after the Secrets encryption key that
// sealed the last one was rotated away still runs.
func TestRotationAfterEncryptionRotation(t *testing.T) {
	a := newPaths(t, nil)
	sa := signer(a)
	client := testutil.WithVersions(fake.NewClientset())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sy := &Sync{Client: client, Paths: a, Node: "a", Signer: sa, Log: slog.New(slog.DiscardHandler)}
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			_ = sy.Once(context.Background())
		}
	}()
	defer func() { close(stop); <-done }()
	r := &Rotation{Client: client, Paths: a, KeepOld: time.Hour, Wait: 10 * time.Second, Out: io.Discard, Now: time.Now,
		Servers: func(context.Context) ([]string, error) { return []string{"a"}, nil }}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	key, err := identity.NewEncryptionKey("monokube-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.EncryptionConfig, identity.RenderEncryptionConfig([]identity.EncryptionKey{key}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err != nil {
		t.Fatalf("the second rotation, after the sealing key was dropped: %v", err)
	}
	st, err := ReadStatus(context.Background(), client, a, []string{"a"})
	if err != nil || st.Stage != StageFinished || !st.Agree {
		t.Errorf("status %+v, %v", st, err)
	}
}
