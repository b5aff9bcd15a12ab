package join

import (
	rbacv1 "k8s.io/api/rbac/v1"
)

// ApproverRules are what the CSR approver may do: cluster-wide, read CSRs
// and nodes and approve for the two node signers only; in kube-system,
// keep the node-name claims (Leases).
func ApproverRules() (cluster, system []rbacv1.PolicyRule) {
	cluster = []rbacv1.PolicyRule{
		{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests/approval"}, Verbs: []string{"update"}},
		{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"signers"}, Verbs: []string{"approve"},
			ResourceNames: []string{"kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
	}
	system = []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update", "delete"}},
	}
	return cluster, system
}

// TokenRules are what the server-token keeper may do: bootstrap-token
// Secrets live in kube-system (RBAC cannot narrow Secrets by type).
func TokenRules() (cluster, system []rbacv1.PolicyRule) {
	return nil, []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
	}
}
