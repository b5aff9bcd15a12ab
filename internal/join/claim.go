package join

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Node names are claimed, one holder each: a Lease monokube-node-<name> in
// kube-system records the key that joined under the name and until when a
// certificate of that name may be valid. The approver takes a claim before
// it approves a join CSR (Create is atomic, so of two concurrent joins for
// one name exactly one wins) and keeps it while certificates of the name
// are valid, even after `kubectl delete node`: a deleted node's certificate
// stays valid, so its name must not go to someone else meanwhile. A node
// that leaves (`monokube uninstall`) releases its claim; an admin releases
// one with `kubectl -n kube-system delete lease monokube-node-<name>`.
const (
	claimPrefix = "monokube-node-"
	// LeavingAnnotation on a Node being deleted by the node itself
	// (agent.Leave) releases the node's claim.
	LeavingAnnotation   = "monokube.io/leaving"
	claimKeyAnnotation  = "monokube.io/key-sha256"
	claimTillAnnotation = "monokube.io/certificate-valid-until"
)

// ClaimName is the Lease that holds node name's claim.
func ClaimName(node string) string { return claimPrefix + node }

// Claims takes, extends and releases node-name claims.
type Claims struct {
	Client kubernetes.Interface
	// Lifetime bounds a join certificate before its real expiry is seen:
	// the controller-manager's signing duration.
	Lifetime time.Duration
	Now      func() time.Time
}

// Take claims node for the joining key keyHash, checking the live API:
// refused while node is in the cluster, or while another key's certificate
// of that name may still be valid.
func (c Claims) Take(ctx context.Context, node, keyHash string) error {
	if len(ClaimName(node)) > 253 {
		return fmt.Errorf("node name %s is too long for monokube (at most %d characters)", node, 253-len(claimPrefix))
	}
	leases := c.Client.CoordinationV1().Leases(metav1.NamespaceSystem)
	_, err := leases.Create(ctx, c.lease(node, keyHash, c.Now().Add(c.Lifetime)), metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return wrapClaim(node, err)
	}
	old, err := leases.Get(ctx, ClaimName(node), metav1.GetOptions{})
	if err != nil {
		return wrapClaim(node, err)
	}
	if old.Annotations[claimKeyAnnotation] == keyHash {
		return nil // the same kubelet asking again
	}
	if _, err := c.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
		return fmt.Errorf("node %s is already in the cluster: delete it (kubectl delete node %s) before it joins again", node, node)
	} else if !apierrors.IsNotFound(err) {
		return wrapClaim(node, err)
	}
	if till := validUntil(old); c.Now().Before(till) {
		return fmt.Errorf("node %s was in the cluster and a certificate of that name may be valid until %s; if that machine is gone for good, release the name: kubectl -n kube-system delete lease %s",
			node, till.Format(time.RFC3339), ClaimName(node))
	}
	fresh := c.lease(node, keyHash, c.Now().Add(c.Lifetime))
	fresh.ResourceVersion = old.ResourceVersion // lost to a concurrent take: refused
	_, err = leases.Update(ctx, fresh, metav1.UpdateOptions{})
	return wrapClaim(node, err)
}

// Extend records that a certificate of node is valid until till, creating
// the claim for a node that joined before claims existed.
func (c Claims) Extend(ctx context.Context, node string, cert *x509.Certificate) error {
	leases := c.Client.CoordinationV1().Leases(metav1.NamespaceSystem)
	old, err := leases.Get(ctx, ClaimName(node), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, c.lease(node, KeyHash(cert.RawSubjectPublicKeyInfo), cert.NotAfter), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // a concurrent take; its lifetime bound covers this certificate
		}
		return wrapClaim(node, err)
	}
	if err != nil || !cert.NotAfter.After(validUntil(old)) {
		return wrapClaim(node, err)
	}
	old = old.DeepCopy()
	old.Annotations[claimTillAnnotation] = cert.NotAfter.UTC().Format(time.RFC3339)
	_, err = leases.Update(ctx, old, metav1.UpdateOptions{})
	return wrapClaim(node, err)
}

// Release frees node's name.
func (c Claims) Release(ctx context.Context, node string) error {
	err := c.Client.CoordinationV1().Leases(metav1.NamespaceSystem).Delete(ctx, ClaimName(node), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return wrapClaim(node, err)
}

func (c Claims) lease(node, keyHash string, till time.Time) *coordinationv1.Lease {
	now := metav1.NewMicroTime(c.Now())
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name: ClaimName(node), Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "monokube"},
			Annotations: map[string]string{
				claimKeyAnnotation: keyHash, claimTillAnnotation: till.UTC().Format(time.RFC3339),
			},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), AcquireTime: &now},
	}
}

// validUntil is a claim's recorded certificate expiry; an unreadable one
// counts as far in the future, so a damaged claim never frees a name.
func validUntil(l *coordinationv1.Lease) time.Time {
	t, err := time.Parse(time.RFC3339, l.Annotations[claimTillAnnotation])
	if err != nil {
		return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return t
}

// KeyHash identifies a public key (DER SubjectPublicKeyInfo).
func KeyHash(spki []byte) string {
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:])
}

func wrapClaim(node string, err error) error {
	if err != nil {
		return fmt.Errorf("claim node name %s: %w", node, err)
	}
	return nil
}
