package control

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The kubelet client's binding is made at every start; the admin group's
// only once, so deleting it revokes admin kubeconfigs for good.
func TestAccessBindsOnceAndKeepsARevocation(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	marker := filepath.Join(t.TempDir(), "admin-binding-made")
	a := NewAccess(client, marker, slog.New(slog.DiscardHandler))
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
