package join

import (
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func testClaims(now *time.Time) Claims {
	return Claims{Client: fake.NewClientset(), Lifetime: 365 * 24 * time.Hour, Now: func() time.Time { return *now }}
}

// Two concurrent joins for one name: exactly one takes it.
func TestClaimTakeConcurrent(t *testing.T) {
	now := time.Now()
	c := testClaims(&now)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Take(t.Context(), "web-5", strings.Repeat(string(rune('a'+i)), 64))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent joins for one name were approved, want exactly 1: %v", won, len(errs), errs)
	}
}

func TestClaimLifecycle(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	c := testClaims(&now)
	ctx := t.Context()
	if err := c.Take(ctx, "web-1", "key-a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Take(ctx, "web-1", "key-a"); err != nil {
		t.Errorf("the same kubelet asking again was refused: %v", err)
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Take(ctx, "web-1", "key-b"); err == nil || !strings.Contains(err.Error(), "already in the cluster") {
		t.Errorf("join for a node in the cluster = %v", err)
	}
	// A renewal extends the claim to the new certificate's expiry.
	if err := c.Extend(ctx, "web-1", &x509.Certificate{NotAfter: now.Add(500 * 24 * time.Hour), RawSubjectPublicKeyInfo: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	// kubectl delete node: the name stays held while the old certificate is valid.
	if err := c.Client.CoreV1().Nodes().Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(400 * 24 * time.Hour) // past the first lifetime, inside the renewed one
	if err := c.Take(ctx, "web-1", "key-b"); err == nil || !strings.Contains(err.Error(), "kubectl -n kube-system delete lease monokube-node-web-1") {
		t.Errorf("join for a deleted node whose certificate is valid = %v, want a refusal saying how to release the name", err)
	}
	now = now.Add(101 * 24 * time.Hour)
	if err := c.Take(ctx, "web-1", "key-b"); err != nil {
		t.Errorf("join after the old certificate expired = %v", err)
	}
	// A node that leaves releases its name at once.
	if err := c.Release(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Take(ctx, "web-1", "key-c"); err != nil {
		t.Errorf("join after the node left = %v", err)
	}
	if err := c.Take(ctx, strings.Repeat("a", 250), "key"); err == nil {
		t.Error("a name too long for its claim was taken")
	}
}
