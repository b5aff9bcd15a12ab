package join

import (
	"bytes"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"sigs.k8s.io/yaml"

	"github.com/monokube/monokube/internal/identity"
)

// SettingsConfigMap (in kube-system) holds what a joining node must know
// about the cluster; join tokens and nodes may read it.
const SettingsConfigMap = "monokube-cluster"

// Cluster is what the server publishes for joining nodes.
type Cluster struct {
	Server   string // https://<advertise-address>:<port>
	CA       []byte // PEM of the CA that signs the apiserver's serving cert
	Settings identity.ClusterSettings
}

// Manifest renders the objects that make joining work, for the manifests
// directory: the public cluster-info ConfigMap (CA and server only; the
// bootstrap signer adds a signature per token), the cluster settings, and
// the RBAC for tokens and nodes — anonymous may get cluster-info, tokens may
// create node CSRs (monokube's approver decides on them), nodes may renew
// their client certificates and, for kube-proxy, list EndpointSlices and
// ServiceCIDRs.
func Manifest(c Cluster) ([]byte, error) {
	kubeconfig, err := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: c.Server, CertificateAuthorityData: c.CA},
	}})
	if err != nil {
		return nil, fmt.Errorf("render cluster-info: %w", err)
	}
	objs := []runtime.Object{
		configMap(metav1.NamespacePublic, bootstrapapi.ConfigMapClusterInfo, map[string]string{bootstrapapi.KubeConfigKey: string(kubeconfig)}),
		configMap(metav1.NamespaceSystem, SettingsConfigMap, c.Settings.Encode()),
		role(metav1.NamespacePublic, "monokube:cluster-info-reader", rbacv1.PolicyRule{
			APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{bootstrapapi.ConfigMapClusterInfo}, Verbs: []string{"get"},
		}),
		roleBinding(metav1.NamespacePublic, "monokube:cluster-info-reader", rbacv1.Subject{Kind: rbacv1.UserKind, Name: "system:anonymous"}),
		role(metav1.NamespaceSystem, "monokube:cluster-settings-reader", rbacv1.PolicyRule{
			APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{SettingsConfigMap}, Verbs: []string{"get"},
		}),
		roleBinding(metav1.NamespaceSystem, "monokube:cluster-settings-reader", group(NodesGroup), group("system:nodes")),
		clusterRoleBinding("monokube:node-bootstrapper", "system:node-bootstrapper", group(NodesGroup)),
		clusterRoleBinding("monokube:node-autoapprove-renewal", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", group("system:nodes")),
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: "monokube:node-proxier"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
				{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"servicecidrs"}, Verbs: []string{"list", "watch"}},
			},
		},
		clusterRoleBinding("monokube:node-proxier", "monokube:node-proxier", group("system:nodes")),
		// flannel's kube subnet manager watches every node for the others'
		// subnets and VTEPs, and annotates its own (NodeRestriction keeps a
		// node's patches to itself).
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: "monokube:flannel"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"nodes/status"}, Verbs: []string{"patch"}},
			},
		},
		clusterRoleBinding("monokube:flannel", "monokube:flannel", group("system:nodes")),
		// `monokube uninstall` on an agent removes its own Node
		// (NodeRestriction again keeps each node to itself).
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: "monokube:node-leave"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"delete"}},
			},
		},
		clusterRoleBinding("monokube:node-leave", "monokube:node-leave", group("system:nodes")),
	}
	var buf bytes.Buffer
	buf.WriteString("# Written by monokube at every start (internal/join): what lets nodes join.\n")
	for _, o := range objs {
		data, err := yaml.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("render join objects: %w", err)
		}
		buf.WriteString("---\n")
		buf.Write(data)
	}
	return buf.Bytes(), nil
}

func configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       data,
	}
}

func role(ns, name string, rule rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Rules:      []rbacv1.PolicyRule{rule},
	}
}

func roleBinding(ns, name string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   subjects,
	}
}

func clusterRoleBinding(name, clusterRole string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   subjects,
	}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}
