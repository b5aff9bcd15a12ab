package control

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The kubelet client's binding is made at every start; the admin group's
// only once, so deleting it revokes admin kubeconfigs for good.
func TestAccessBindsOnceAndKeepsARevocation(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	marker := filepath.Join(t.TempDir(), "admin-binding-made")
	a := NewAccess(client, marker, nil, slog.New(slog.DiscardHandler))
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	crbs := client.RbacV1().ClusterRoleBindings()
	admins, err := crbs.Get(ctx, ClusterAdminsGroup, metav1.GetOptions{})
	if err != nil || admins.RoleRef.Name != "cluster-admin" || admins.Subjects[0].Name != ClusterAdminsGroup {
		t.Fatalf("admin binding = %+v, %v", admins, err)
	}
	kubelet, err := crbs.Get(ctx, "monokube:apiserver-kubelet-client", metav1.GetOptions{})
	if err != nil || kubelet.RoleRef.Name != "system:kubelet-api-admin" || kubelet.Subjects[0].Name != KubeletClientUser {
		t.Fatalf("kubelet client binding = %+v, %v", kubelet, err)
	}
	for _, name := range []string{ClusterAdminsGroup, "monokube:apiserver-kubelet-client"} {
		if err := crbs.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ensure(ctx); err != nil { // the next start
		t.Fatal(err)
	}
	if _, err := crbs.Get(ctx, ClusterAdminsGroup, metav1.GetOptions{}); err == nil {
		t.Error("a revoked admin binding came back at restart")
	}
	if _, err := crbs.Get(ctx, "monokube:apiserver-kubelet-client", metav1.GetOptions{}); err != nil {
		t.Errorf("the kubelet client binding was not made again: %v", err)
	}
}

// A controller's rights are a ClusterRole and a kube-system Role of its
// name, bound to it, brought back to this version's rules at each start.
func TestAccessGrantsControllerRights(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	rules := func(verb string) []rbacv1.PolicyRule {
		return []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{verb}}}
	}
	id := Identity{User: "monokube:test", Cluster: rules("list"), System: rules("get")}
	a := NewAccess(client, filepath.Join(t.TempDir(), "m"), []Identity{id}, slog.New(slog.DiscardHandler))
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	id.Cluster = rules("watch")
	a.identities = []Identity{id}
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	cr, err := client.RbacV1().ClusterRoles().Get(ctx, id.User, metav1.GetOptions{})
	if err != nil || cr.Rules[0].Verbs[0] != "watch" {
		t.Errorf("ClusterRole = %+v, %v; want the new rules", cr, err)
	}
	if crb, err := client.RbacV1().ClusterRoleBindings().Get(ctx, id.User, metav1.GetOptions{}); err != nil || crb.Subjects[0].Name != id.User {
		t.Errorf("ClusterRoleBinding = %+v, %v", crb, err)
	}
	if r, err := client.RbacV1().Roles("kube-system").Get(ctx, id.User, metav1.GetOptions{}); err != nil || r.Rules[0].Verbs[0] != "get" {
		t.Errorf("Role = %+v, %v", r, err)
	}
	if rb, err := client.RbacV1().RoleBindings("kube-system").Get(ctx, id.User, metav1.GetOptions{}); err != nil || rb.RoleRef.Name != id.User {
		t.Errorf("RoleBinding = %+v, %v", rb, err)
	}
}
