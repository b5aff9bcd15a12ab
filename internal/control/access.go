package control

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	rbacac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/lifecycle"
)

// Identities of the control plane's own client certificates that RBAC,
// not system:masters, gives their rights, so that they can be revoked.
const (
	// ClusterAdminsGroup is the group of the admin kubeconfig, bound to
	// cluster-admin; deleting the binding revokes every admin kubeconfig.
	ClusterAdminsGroup = "monokube:cluster-admins"
	AdminUser          = "monokube-admin"
	// SuperAdminUser is the break-glass identity (system:masters), kept in
	// <data-dir>/server/cred/super-admin.kubeconfig only.
	SuperAdminUser = "monokube-super-admin"
	// KubeletClientUser is the apiserver towards kubelets (logs, exec,
	// port-forward), bound to system:kubelet-api-admin.
	KubeletClientUser = "kube-apiserver-kubelet-client"
	// The in-process controllers, each with a client cert of its own.
	ApproverUser    = "monokube:csr-approver"
	TokenUser       = "monokube:join-token"
	NodeHostsUser   = "monokube:nodehosts"
	FlannelPeerUser = "monokube:flannel-peer"
	RootCAUser      = "monokube:root-ca-publisher"
)

// Identity is an in-process controller's user and what RBAC grants it,
// cluster-wide and in kube-system.
type Identity struct {
	User            string
	Cluster, System []rbacv1.PolicyRule
}

// Access creates the RBAC the control plane's own identities rest on, as
// super-admin, before anything else uses them: the rights of the
// apiserver's kubelet client and of each in-process controller at every
// start (brought back to what this version needs), and the admin group's
// binding once per data dir (a marker file records it), so that an admin
// who deletes it to revoke the admin kubeconfigs is not overruled by a
// restart.
type Access struct {
	// AfterAdminBound, if set, runs once the admin group's binding is first
	// made (the server writes the admin kubeconfigs then).
	AfterAdminBound func() error

	client     kubernetes.Interface
	marker     string
	identities []Identity
	log        *slog.Logger
}

// NewAccess returns the task; marker is the file that records the admin
// binding as made.
func NewAccess(client kubernetes.Interface, marker string, identities []Identity, log *slog.Logger) *Access {
	return &Access{client: client, marker: marker, identities: identities, log: log}
}

var _ lifecycle.Task = (*Access)(nil)

// Name implements lifecycle.Task.
func (*Access) Name() string { return "control-plane-access" }

// Do implements lifecycle.Task: it makes the bindings, retrying while the
// apiserver settles. A stop before the apiserver took them is no failure.
func (a *Access) Do(ctx context.Context) error {
	_ = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if err := a.ensure(ctx); err != nil {
			a.log.Warn("cannot bind the control plane's identities yet; retrying", "err", err)
			return false, nil
		}
		return true, nil
	})
	return nil
}

func (a *Access) ensure(ctx context.Context) error {
	for _, id := range a.identities {
		if err := a.grant(ctx, id); err != nil {
			return err
		}
	}
	if err := a.create(ctx, binding("monokube:apiserver-kubelet-client", "system:kubelet-api-admin",
		rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: KubeletClientUser})); err != nil {
		return err
	}
	if fsutil.Exists(a.marker) {
		return nil
	}
	if err := a.create(ctx, binding(ClusterAdminsGroup, "cluster-admin",
		rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: ClusterAdminsGroup})); err != nil {
		return err
	}
	if a.AfterAdminBound != nil {
		if err := a.AfterAdminBound(); err != nil {
			return err
		}
	}
	note := "monokube made the ClusterRoleBinding " + ClusterAdminsGroup + " once; delete it to revoke admin kubeconfigs, and it stays deleted.\n"
	return fsutil.WriteFile(a.marker, []byte(note), 0o600)
}

// create makes b; an existing one is left as the admin keeps it.
func (a *Access) create(ctx context.Context, b *rbacv1.ClusterRoleBinding) error {
	_, err := a.client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ClusterRoleBinding %s: %w", b.Name, err)
	}
	if err == nil {
		a.log.Info("bound a control-plane identity", "binding", b.Name, "role", b.RoleRef.Name)
	}
	return nil
}

// grant gives id its rights: a ClusterRole and a Role in kube-system of
// the user's name, each bound to it. The roles are server-side applied, so
// each start brings their rules back to this version's (a no-op write when
// they already are); the bindings are made once.
func (a *Access) grant(ctx context.Context, id Identity) error {
	subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: id.User}
	apply := metav1.ApplyOptions{FieldManager: "monokube", Force: true}
	if len(id.Cluster) > 0 {
		role := rbacac.ClusterRole(id.User).WithLabels(managedLabels()).WithRules(ruleConfigs(id.Cluster)...)
		if _, err := a.client.RbacV1().ClusterRoles().Apply(ctx, role, apply); err != nil {
			return fmt.Errorf("ClusterRole %s: %w", id.User, err)
		}
		if err := a.create(ctx, binding(id.User, id.User, subject)); err != nil {
			return err
		}
	}
	if len(id.System) == 0 {
		return nil
	}
	ns := metav1.NamespaceSystem
	role := rbacac.Role(id.User, ns).WithLabels(managedLabels()).WithRules(ruleConfigs(id.System)...)
	if _, err := a.client.RbacV1().Roles(ns).Apply(ctx, role, apply); err != nil {
		return fmt.Errorf("role %s/%s: %w", ns, id.User, err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: managed(id.User, ns),
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: id.User}, Subjects: []rbacv1.Subject{subject}}
	_, err := a.client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("RoleBinding %s/%s: %w", ns, id.User, err)
	}
	return nil
}

// ruleConfigs are rules in the form server-side apply takes.
func ruleConfigs(rules []rbacv1.PolicyRule) []*rbacac.PolicyRuleApplyConfiguration {
	out := make([]*rbacac.PolicyRuleApplyConfiguration, 0, len(rules))
	for _, r := range rules {
		out = append(out, rbacac.PolicyRule().WithAPIGroups(r.APIGroups...).WithResources(r.Resources...).
			WithResourceNames(r.ResourceNames...).WithVerbs(r.Verbs...).WithNonResourceURLs(r.NonResourceURLs...))
	}
	return out
}

func managedLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/managed-by": "monokube"}
}

func managed(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: managedLabels()}
}

func binding(name, clusterRole string, subject rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: managed(name, ""),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{subject},
	}
}
