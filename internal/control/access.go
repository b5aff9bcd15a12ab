package control

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/fsutil"
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
)

// Access creates the RBAC the control plane's own identities rest on, as
// super-admin, before anything else uses them: the apiserver's kubelet
// client binding at every start, and the admin group's binding once per
// data dir (a marker file records it), so that an admin who deletes it to
// revoke the admin kubeconfigs is not overruled by a restart.
type Access struct {
	client kubernetes.Interface
	marker string
	log    *slog.Logger
	ready  chan struct{}
}

// NewAccess returns the component; marker is the file that records the
// admin binding as made.
func NewAccess(client kubernetes.Interface, marker string, log *slog.Logger) *Access {
	return &Access{client: client, marker: marker, log: log, ready: make(chan struct{})}
}

// Name implements lifecycle.Component.
func (*Access) Name() string { return "control-plane access" }

// Run makes the bindings, retrying while the apiserver settles, then
// waits for ctx.
func (a *Access) Run(ctx context.Context) error {
	for {
		err := a.ensure(ctx)
		if err == nil {
			break
		}
		a.log.Warn("cannot bind the control plane's identities yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	close(a.ready)
	<-ctx.Done()
	return nil
}

// WaitReady implements lifecycle.Readier: the bindings exist.
func (a *Access) WaitReady(ctx context.Context) error {
	select {
	case <-a.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Access) ensure(ctx context.Context) error {
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

func binding(name, clusterRole string, subject rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "monokube"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{subject},
	}
}
