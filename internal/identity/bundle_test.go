package identity

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/testutil"
)

// newServer makes an identity the way a first server does.
func newServer(t *testing.T) datadir.Layout {
	t.Helper()
	dir := t.TempDir()
	l := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	if _, err := Init(testutil.ServerConfig(t, dir, nil), l, nil, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return l
}

func encoded(t *testing.T, l datadir.Layout) []byte {
	t.Helper()
	id, err := Load(l)
	if err != nil {
		t.Fatal(err)
	}
	b, err := id.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A second server that takes the first's bundle and starts holds the same
// CAs and keys; its leaves are its own.
func TestBundleMakesTheSameIdentity(t *testing.T) {
	first := newServer(t)
	dir := t.TempDir()
	second := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	b, err := DecodeBundle(encoded(t, first), second)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(second); err != nil {
		t.Fatal(err)
	}
	id, err := Init(testutil.ServerConfig(t, dir, nil), second, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Load(first)
	if err != nil {
		t.Fatal(err)
	}
	if !id.CAs.Server.Cert.Equal(want.CAs.Server.Cert) || !id.CAs.Client.Cert.Equal(want.CAs.Client.Cert) ||
		!id.CAs.Etcd.Cert.Equal(want.CAs.Etcd.Cert) || !id.CAs.APIService.Cert.Equal(want.CAs.APIService.Cert) {
		t.Error("the second server's CAs are not the first's")
	}
	if id.MadeRecoveryKey != nil {
		t.Error("the second server made a recovery key of its own; it takes the cluster's")
	}
	for _, f := range []string{want.Creds.ServiceKey, want.Creds.EncryptionConfig, want.Creds.RecoveryKey} {
		a, _ := os.ReadFile(f)
		b, _ := os.ReadFile(filepath.Join(dir, rel(first, f)))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s differs between the servers", rel(first, f))
		}
	}
	if a, b := readFile(t, want.Creds.APIServerServing.Cert()), readFile(t, id.Creds.APIServerServing.Cert()); a == b {
		t.Error("the second server reuses the first's apiserver certificate; leaves are each server's own")
	}
	if fi, err := os.Stat(id.Creds.ServerCA.Key()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server CA key: %v, %v; want 0600", fi, err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Decode refuses what is not a whole identity: another format, a missing
// file, a file it does not know (a path it must not write), a CA whose key
// is another's.
func TestDecodeBundleRefuses(t *testing.T) {
	l := newServer(t)
	c := control.NewCreds(l)
	for _, tc := range []struct {
		name string
		edit func(b *Bundle)
		want string
	}{
		{"version", func(b *Bundle) { b.Version = 2 }, "format 2"},
		{"missing", func(b *Bundle) { delete(b.Files, rel(l, c.ServiceKey)) }, "missing: server/tls/service.key"},
		{"unknown", func(b *Bundle) { b.Files["../../etc/cron.d/x"] = []byte("x") }, "unknown: ../../etc/cron.d/x"},
		{"mismatched CA", func(b *Bundle) {
			b.Files[rel(l, c.ServerCA.Key())] = b.Files[rel(l, c.ClientCA.Key())]
		}, "bad certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b Bundle
			if err := json.Unmarshal(encoded(t, l), &b); err != nil {
				t.Fatal(err)
			}
			tc.edit(&b)
			data, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeBundle(data, l); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeBundle = %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := DecodeBundle([]byte("{"), l); err == nil || !strings.Contains(err.Error(), "not readable") {
		t.Errorf("DecodeBundle of garbage = %v", err)
	}
}

// Write over another cluster's keys refuses before writing anything; over
// a part of the same bundle (an interrupted join) it completes it.
func TestBundleWrite(t *testing.T) {
	first, other := newServer(t), newServer(t)
	b, err := DecodeBundle(encoded(t, first), other)
	if err != nil {
		t.Fatal(err)
	}
	before := readFile(t, control.NewCreds(other).ServiceKey)
	err = b.Write(other)
	if err == nil || !strings.Contains(err.Error(), "keys of another cluster") || !strings.Contains(err.Error(), "move "+other.Server()+" away") {
		t.Fatalf("Write over another identity = %v, want a refusal", err)
	}
	if readFile(t, control.NewCreds(other).ServiceKey) != before {
		t.Error("the refused Write changed a file")
	}

	dir := t.TempDir()
	partial := datadir.Layout{Data: dir, Run: filepath.Join(dir, "run")}
	caKey := rel(first, control.NewCreds(first).ServerCA.Key())
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, caKey)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, caKey), b.Files[caKey], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(partial); err != nil {
		t.Fatalf("Write over a part of the same identity: %v", err)
	}
	if _, err := Load(partial); err != nil {
		t.Errorf("after completing the bundle: %v", err)
	}
}

// A snapshot's bundle from before a key rotation writes over the server's
// rotated keys once they are taken out (a restore), but never over other
// CAs.
func TestBundleTakeRotating(t *testing.T) {
	l := newServer(t)
	snap := encoded(t, l)
	c := control.NewCreds(l)
	rotatedKey, err := NewEncryptionKey("monokube-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.EncryptionConfig, RenderEncryptionConfig([]EncryptionKey{rotatedKey}), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBundle(snap, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(l); err == nil {
		t.Fatal("the whole bundle wrote over a rotated encryption config")
	}
	rotating := b.TakeRotating(l)
	if len(rotating) != 3 {
		t.Fatalf("TakeRotating took %d files, want the encryption config and the two service-account key files", len(rotating))
	}
	if err := b.Write(l); err != nil {
		t.Fatalf("the rest of the bundle: %v", err)
	}
	if err := fsutil.WriteFiles(rotating...); err != nil {
		t.Fatal(err)
	}
	keys, err := ParseEncryptionConfig([]byte(readFile(t, c.EncryptionConfig)))
	if err != nil || len(keys) != 1 || keys[0].Name != "monokube-1" {
		t.Errorf("after the restore's writes the encryption config holds %v (%v), want the snapshot's monokube-1", keys, err)
	}
}
