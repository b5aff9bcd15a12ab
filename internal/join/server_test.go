package join

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstrapsecrets "k8s.io/cluster-bootstrap/util/secrets"
)

// newTestServerToken is a ServerToken over a fake API, its clock at *now.
func newTestServerToken(t *testing.T, ttl time.Duration, now *time.Time) (*ServerToken, *fake.Clientset) {
	t.Helper()
	ca := testCA(t)
	tok, err := NewToken(ca)
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	s := NewServerToken(client, ServerTokenConfig{CA: ca, Token: tok, Fresh: true, TTL: ttl,
		Path: filepath.Join(t.TempDir(), "token")}, slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return *now }
	return s, client
}

// tokenIDs lists the join tokens stored in client, with their expiry.
func tokenIDs(t *testing.T, s *ServerToken) map[string]string {
	t.Helper()
	list, err := s.client.CoreV1().Secrets(metav1.NamespaceSystem).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i := range list.Items {
		id, _ := bootstrapsecrets.ParseName(list.Items[i].Name)
		out[id] = string(list.Items[i].Data[bootstrapapi.BootstrapTokenExpirationKey])
	}
	return out
}

func fileToken(t *testing.T, s *ServerToken) Token {
	t.Helper()
	data, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken(string(data))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A token with a TTL is replaced at half its life, the file follows, and
// the replaced one stays until it expires.
func TestServerTokenRotates(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, _ := newTestServerToken(t, 24*time.Hour, &now)
	first := s.token
	if err := s.store(ctx, first); err != nil {
		t.Fatal(err)
	}
	wait, err := s.check(ctx)
	if err != nil || wait != recheck {
		t.Fatalf("check on a new token = %s, %v; want %s (nothing due)", wait, err, recheck)
	}
	now = now.Add(12*time.Hour + time.Minute)
	if _, err := s.check(ctx); err != nil {
		t.Fatal(err)
	}
	if s.token == first || fileToken(t, s) != s.token {
		t.Fatalf("after half the TTL the token is %s, the file %s; want a new one in both", s.token.ID, fileToken(t, s).ID)
	}
	ids := tokenIDs(t, s)
	if len(ids) != 2 || ids[first.ID] == "" || ids[s.token.ID] == "" {
		t.Errorf("stored tokens = %v, want the old and the new, both expiring", ids)
	}
}

// With --token-ttl 0 a leftover never-expiring server token (a crash
// between Secret and file) is deleted; user tokens are not touched.
func TestServerTokenSweepsStale(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, client := newTestServerToken(t, 0, &now)
	stale, user := s.token, mustToken(t, s)
	for _, tc := range []struct {
		tok  Token
		desc string
	}{{stale, serverTokenDescription}, {user, "for the lab"}} {
		if err := CreateSecret(ctx, client, tc.tok, Spec{Role: RoleAgent, Description: tc.desc}, now); err != nil {
			t.Fatal(err)
		}
	}
	s.token = mustToken(t, s)
	if err := s.store(ctx, s.token); err != nil {
		t.Fatal(err)
	}
	wait, err := s.check(ctx)
	if err != nil || wait != recheck {
		t.Fatalf("check = %s, %v; want %s", wait, err, recheck)
	}
	ids := tokenIDs(t, s)
	if _, ok := ids[stale.ID]; ok || len(ids) != 2 || ids[s.token.ID] != "" {
		t.Errorf("stored tokens = %v; want %s (never expiring) and the user's %s, not the stale %s", ids, s.token.ID, user.ID, stale.ID)
	}
}

// Changing the TTL takes effect on the current token: a never-expiring one
// is replaced when a TTL is set, an expiring one when the TTL becomes 0,
// and a missing one is replaced only while a TTL is set.
func TestServerTokenDue(t *testing.T) {
	now := time.Now().Truncate(time.Second) // as the RFC 3339 expiry keeps it
	for _, tc := range []struct {
		name   string
		ttl    time.Duration
		stored time.Duration // -1: missing, 0: never expires
		want   func(time.Duration) bool
	}{
		{"never expiring, TTL set", time.Hour, 0, func(d time.Duration) bool { return d <= 0 }},
		{"expiring, TTL 0", 0, time.Hour, func(d time.Duration) bool { return d <= 0 }},
		{"missing, TTL set", time.Hour, -1, func(d time.Duration) bool { return d <= 0 }},
		{"missing, TTL 0", 0, -1, func(d time.Duration) bool { return d == recheck }},
		{"longer than the TTL", time.Hour, 48 * time.Hour, func(d time.Duration) bool { return d <= 0 }},
		{"fresh", 24 * time.Hour, 24 * time.Hour, func(d time.Duration) bool { return d == 12*time.Hour }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServerToken(t, tc.ttl, &now)
			sec := Secret(s.token, Spec{Role: RoleAgent, TTL: tc.stored, Description: serverTokenDescription}, now)
			if tc.stored < 0 {
				sec = nil
			}
			if got := s.due(sec); !tc.want(got) {
				t.Errorf("due = %s", got)
			}
		})
	}
}

func mustToken(t *testing.T, s *ServerToken) Token {
	t.Helper()
	tok, err := NewToken(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// An upgrade to a TTL: the old never-expiring server token is replaced and
// expires one TTL later instead of dying at once (scripts may hold it).
func TestServerTokenUpgradeToTTL(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, client := newTestServerToken(t, 24*time.Hour, &now)
	old := s.token
	if err := CreateSecret(ctx, client, old, Spec{Role: RoleAgent, Description: serverTokenDescription}, now); err != nil {
		t.Fatal(err)
	}
	s.fresh = false
	if _, err := s.check(ctx); err != nil {
		t.Fatal(err)
	}
	ids := tokenIDs(t, s)
	if s.token == old || ids[old.ID] == "" || ids[s.token.ID] == "" {
		t.Errorf("tokens = %v (current %s); want the old %s kept with an expiry and a new current one", ids, s.token.ID, old.ID)
	}
}

// A token file that cannot be written is retried; no new token is made
// meanwhile.
func TestServerTokenRetriesTheFile(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s, _ := newTestServerToken(t, 24*time.Hour, &now)
	s.path = filepath.Join(t.TempDir(), "file", "token")
	if err := os.WriteFile(filepath.Dir(s.path), nil, 0o600); err != nil { // a file where the dir should be
		t.Fatal(err)
	}
	if err := s.store(ctx, s.token); err == nil {
		t.Fatal("store under a file succeeded")
	}
	for range 3 {
		if _, err := s.check(ctx); err == nil {
			t.Fatal("check with an unwritable file succeeded")
		}
	}
	if ids := tokenIDs(t, s); len(ids) != 1 {
		t.Errorf("tokens = %v, want only the first: a failed file write must not make new ones", ids)
	}
	if err := os.Remove(filepath.Dir(s.path)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.check(ctx); err != nil || fileToken(t, s) != s.token {
		t.Errorf("check after the fault = %v; the file should hold the current token", err)
	}
}
