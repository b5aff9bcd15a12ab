package join

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	bootstrapsecrets "k8s.io/cluster-bootstrap/util/secrets"
)

// NodesGroup is the extra group of every join token: RBAC lets it create
// node CSRs and read the cluster settings, nothing else.
const NodesGroup = "system:bootstrappers:monokube:nodes"

// Spec is how a token is stored: what it joins, how long it works (0:
// never expires) and what it is for.
type Spec struct {
	Role        Role
	TTL         time.Duration
	Description string
}

// Secret is the bootstrap-token Secret for t, its TTL counted from now.
// It fills Data, as the API returns it, so readers need no conversion.
func Secret(t Token, spec Spec, now time.Time) *corev1.Secret {
	data := map[string][]byte{}
	for k, v := range secretData(t, spec, now) {
		data[k] = []byte(v)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(t.ID), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		Data:       data,
	}
}

// secretData is the bootstrap-token data of t.
func secretData(t Token, spec Spec, now time.Time) map[string]string {
	data := map[string]string{
		bootstrapapi.BootstrapTokenIDKey:               t.ID,
		bootstrapapi.BootstrapTokenSecretKey:           t.Secret,
		bootstrapapi.BootstrapTokenUsageAuthentication: "true",
		bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
		bootstrapapi.BootstrapTokenExtraGroupsKey:      strings.Join(spec.Role.groups(), ","),
	}
	if spec.Description != "" {
		data[bootstrapapi.BootstrapTokenDescriptionKey] = spec.Description
	}
	if spec.TTL > 0 {
		data[bootstrapapi.BootstrapTokenExpirationKey] = now.Add(spec.TTL).UTC().Format(time.RFC3339)
	}
	return data
}

// CreateSecret stores t in the cluster, its TTL counted from now; an
// existing Secret for the same id is left as it is.
func CreateSecret(ctx context.Context, c kubernetes.Interface, t Token, spec Spec, now time.Time) error {
	_, err := c.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, Secret(t, spec, now), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("store join token %s: %w", t.ID, err)
	}
	return nil
}

// Info describes a stored token for `monokube token list`.
type Info struct {
	ID          string
	Role        Role
	Expires     string // RFC3339, or "never"
	Expired     bool
	Description string
}

// List returns the join tokens in the cluster (the secrets are not shown).
func List(ctx context.Context, c kubernetes.Interface, now time.Time) ([]Info, error) {
	secrets, err := c.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{
		FieldSelector: "type=" + string(bootstrapapi.SecretTypeBootstrapToken),
	})
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	var out []Info
	for i := range secrets.Items {
		s := &secrets.Items[i]
		id, ok := bootstrapsecrets.ParseName(s.Name)
		if !ok {
			continue
		}
		exp := bootstrapsecrets.GetData(s, bootstrapapi.BootstrapTokenExpirationKey)
		if exp == "" {
			exp = "never"
		}
		out = append(out, Info{ID: id, Role: roleOf(bootstrapsecrets.GetData(s, bootstrapapi.BootstrapTokenExtraGroupsKey)), Expires: exp, Expired: bootstrapsecrets.HasExpired(s, now),
			Description: bootstrapsecrets.GetData(s, bootstrapapi.BootstrapTokenDescriptionKey)})
	}
	return out, nil
}

// Delete removes the token with id; joined nodes keep working, since they
// hold certificates of their own by then.
func Delete(ctx context.Context, c kubernetes.Interface, id string) error {
	if !bootstraputil.IsValidBootstrapTokenID(id) {
		return fmt.Errorf("%q is not a token id (6 characters a-z0-9, as `monokube token list` shows)", id)
	}
	err := c.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, bootstraputil.BootstrapTokenSecretName(id), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("no join token %s (see `monokube token list`)", id)
	}
	if err != nil {
		return fmt.Errorf("delete join token %s: %w", id, err)
	}
	return nil
}
