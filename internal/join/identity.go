package join

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// identityKey is the key of the encoded identity.Bundle in its Secret.
const identityKey = "identity.json"

// identityName names the Secret, Role and RoleBinding that give server
// token id, and it alone, the cluster identity.
func identityName(id string) string { return "monokube-server-join-" + id }

// PublishIdentity makes the cluster identity (an encoded identity.Bundle)
// readable with server token t, and with no other token: a Secret holding
// it and a Role and RoleBinding that let the token's user
// (system:bootstrap:<id>) get that one Secret. All three are owned by the
// token's own Secret, so the garbage collector removes them with it: at
// `token delete`, or when the token cleaner removes an expired token.
// The identity exists in the API only while a server token lives.
func PublishIdentity(ctx context.Context, c kubernetes.Interface, t Token, bundle []byte) error {
	tokenSecret, err := c.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, bootstraputil.BootstrapTokenSecretName(t.ID), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("find server token %s: %w", t.ID, err)
	}
	meta := metav1.ObjectMeta{
		Name: identityName(t.ID), Namespace: metav1.NamespaceSystem,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Secret", Name: tokenSecret.Name, UID: tokenSecret.UID}},
	}
	secret := &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{identityKey: bundle}}
	if _, err := c.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("store the cluster identity for server token %s: %w", t.ID, err)
	}
	r := &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{meta.Name}, Verbs: []string{"get"},
	}}}
	if _, err := c.RbacV1().Roles(metav1.NamespaceSystem).Create(ctx, r, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("let server token %s read the cluster identity: %w", t.ID, err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: meta,
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: meta.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: bootstrapapi.BootstrapUserPrefix + t.ID}},
	}
	if _, err := c.RbacV1().RoleBindings(metav1.NamespaceSystem).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("let server token %s read the cluster identity: %w", t.ID, err)
	}
	return nil
}

// RefreshIdentities puts bundle, the cluster identity as it is now, in
// place of the one every live server token holds: after a key rotation, a
// server that joins with a token made before must take the new keys. It
// returns how many it refreshed.
func RefreshIdentities(ctx context.Context, c kubernetes.Interface, bundle []byte) (int, error) {
	secrets, err := c.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list the server tokens' identities: %w", err)
	}
	n := 0
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if !strings.HasPrefix(s.Name, identityName("")) || s.Data[identityKey] == nil {
			continue
		}
		s.Data[identityKey] = bundle
		if _, err := c.CoreV1().Secrets(metav1.NamespaceSystem).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return n, fmt.Errorf("refresh the identity of server token Secret %s: %w", s.Name, err)
		}
		n++
	}
	return n, nil
}

// FetchIdentity reads the encoded cluster identity from the cluster with
// server token t, over TLS verified by ca (from Discover). An agent token
// is refused with what to do, before anything else is asked.
func FetchIdentity(ctx context.Context, server string, ca []byte, t Token) ([]byte, error) {
	c, err := kubernetes.NewForConfig(BootstrapConfig(server, ca, t))
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", server, err)
	}
	review, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("ask %s what token %s may do: %w", server, t.ID, err)
	}
	if !slices.Contains(review.Status.UserInfo.Groups, ServersGroup) {
		return nil, fmt.Errorf("token %s is an agent token, which joins agents only: on a server, run `monokube token create --role server` and join this server with that token", t.ID)
	}
	s, err := c.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, identityName(t.ID), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("the cluster holds no identity for server token %s (its server removed it, or an older monokube made the token): create another with `monokube token create --role server`", t.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("read the cluster identity from %s: %w", server, err)
	}
	return s.Data[identityKey], nil
}
