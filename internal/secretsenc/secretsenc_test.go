package secretsenc

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/testutil"
)

// server is one server's part in a test: its config file, and an
// "apiserver" that applies whatever the file holds at once.
type server struct {
	name string
	file string
}

func newServers(t *testing.T, names ...string) []server {
	t.Helper()
	key, err := identity.NewEncryptionKey("monokube-1")
	if err != nil {
		t.Fatal(err)
	}
	config := identity.RenderEncryptionConfig([]identity.EncryptionKey{key})
	var out []server
	for _, n := range names {
		s := server{name: n, file: filepath.Join(t.TempDir(), "encryption-config.json")}
		if err := os.WriteFile(s.file, config, 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// sync is s's component; applied, if set, is what its apiserver runs
// with whatever the file holds.
func (s server) sync(client *fake.Clientset, applied string) *Sync {
	return &Sync{Client: client, File: s.file, Node: s.name, Log: slog.New(slog.DiscardHandler),
		Applied: func() (string, error) {
			if applied != "" {
				return applied, nil
			}
			data, err := os.ReadFile(s.file)
			return Hash(data), err
		}}
}

// running syncs s as its server's component would, until the test ends
// or the returned stop is called.
func running(t *testing.T, client *fake.Clientset, s server, applied string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sy := s.sync(client, applied)
		for ctx.Err() == nil {
			_ = sy.Once(ctx)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func rotation(client *fake.Clientset, file string, wait time.Duration, servers ...string) *Rotation {
	return &Rotation{Client: client, File: file, Wait: wait, Out: io.Discard, Now: time.Now,
		Servers: func(context.Context) ([]string, error) { return servers, nil }}
}

func keysOf(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := identity.ParseEncryptionConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	return names(keys)
}

// A rotation on two servers ends with both holding only the new key, every
// Secret written again while the new key encrypted, and the status agreed.
func TestRotationTwoServers(t *testing.T) {
	ss := newServers(t, "a", "b")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default"}, Data: map[string][]byte{"k": []byte("v")}}
	client := testutil.WithVersions(fake.NewClientset(secret))
	var rewrittenWith []string // the encrypting key of server a at each Secret update
	client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		rewrittenWith = append(rewrittenWith, keysOf(t, ss[0].file)[0])
		return false, nil, nil
	})
	running(t, client, ss[0], "")
	running(t, client, ss[1], "")
	if err := rotation(client, ss[0].file, 10*time.Second, "a", "b").Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if keys := keysOf(t, s.file); len(keys) != 1 || keys[0] == "monokube-1" {
			t.Errorf("server %s ends with keys %v, want only the new one", s.name, keys)
		}
	}
	if len(rewrittenWith) != 1 || rewrittenWith[0] == "monokube-1" {
		t.Errorf("Secret updates made while %v encrypted; want one, under the new key", rewrittenWith)
	}
	st, err := ReadStatus(context.Background(), client, ss[1].file, []string{"a", "b"})
	if err != nil || st.Stage != StageFinished || !st.Agree {
		t.Errorf("status %+v, %v; want finished and agreed", st, err)
	}
}

// A server that does not apply a stage stops the rotation there, named;
// once it does, the rotation goes on from that stage to the end.
func TestRotationWaitsForEveryServer(t *testing.T) {
	ss := newServers(t, "a", "b")
	client := testutil.WithVersions(fake.NewClientset())
	running(t, client, ss[0], "")
	err := rotation(client, ss[0].file, time.Second, "a", "b").Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "servers b have not applied stage current") {
		t.Fatalf("b silent before the rotation: err %v", err)
	}
	original, err := os.ReadFile(ss[1].file)
	if err != nil {
		t.Fatal(err)
	}
	stuck := running(t, client, ss[1], Hash(original)) // b's apiserver never reloads
	err = rotation(client, ss[0].file, time.Second, "a", "b").Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "servers b have not applied stage prepare") {
		t.Fatalf("b stuck: err %v", err)
	}
	if keys := keysOf(t, ss[0].file); len(keys) != 2 || keys[0] != "monokube-1" {
		t.Fatalf("a holds %v at prepare, want the old key encrypting and the new one", keys)
	}
	stuck()
	running(t, client, ss[1], "")
	if err := rotation(client, ss[0].file, 10*time.Second, "a", "b").Run(context.Background()); err != nil {
		t.Fatalf("after b applies: %v", err)
	}
	if a, b := keysOf(t, ss[0].file), keysOf(t, ss[1].file); len(a) != 1 || len(b) != 1 || a[0] != b[0] || a[0] == "monokube-1" {
		t.Errorf("a ends with %v, b with %v; want the same single new key", a, b)
	}
}

// The sealed config opens only with its key, unchanged.
func TestSeal(t *testing.T) {
	k1, _ := identity.NewEncryptionKey("k1")
	k2, _ := identity.NewEncryptionKey("k2")
	sealed, err := seal([]byte("config"), k1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(sealed, k1); err != nil || string(got) != "config" {
		t.Fatalf("open with k1: %q, %v", got, err)
	}
	if _, err := open(sealed, identity.EncryptionKey{Name: "k1", Secret: k2.Secret}); err == nil {
		t.Error("opened with another key's secret")
	}
	if _, err := decode(map[string]string{keySealed: sealed, keySealedWith: "k1"}, []identity.EncryptionKey{k2}); err == nil ||
		!strings.Contains(err.Error(), "does not hold") {
		t.Errorf("decode without the key: %v", err)
	}
}
