// Package identity owns a cluster's identity: the keys that make a set of
// machines one cluster, and the plan of which certificate each of them
// signs.
//
// The identity proper is what every server of a cluster must share and
// what a backup must keep together with etcd's data, because etcd's data
// is worthless without it:
//
//   - six certificate authorities (below);
//   - the service-account signing key (server/tls/service.key, with
//     service.pub): every service account token is signed with it;
//   - the Secrets encryption key, in server/cred/encryption-config.json:
//     etcd holds every Secret encrypted with it.
//
// Everything else is derived from those keys on each server and re-issued
// at start when it no longer matches what is asked for (pki.EnsureLeaf):
// the leaf certificates, the kubeconfigs, the authentication config, the
// kubelet CA bundle, the copy of the client CA the server's own node
// trusts.
//
// Who signs what:
//
//   - server CA (server/tls/server-ca): the serving certificates of
//     kube-apiserver, kube-controller-manager and kube-scheduler. Joining
//     nodes pin its hash in the join token, and pods trust it as the
//     apiserver's (the controller-manager's root-ca-file).
//   - client CA (server/tls/client-ca): every client certificate: the
//     admin's and super-admin's, the components', the in-process
//     controllers', the apiserver's towards kubelets, the server's own
//     kubelet and kube-proxy, and, through the controller-manager's CSR
//     signer, agents' kubelets. The apiserver and every kubelet trust it;
//     joining nodes learn it in ClusterSettings.
//   - request-header CA (server/tls/request-header-ca): the aggregator's
//     front-proxy client certificate.
//   - etcd CA (server/tls/etcd/server-ca): etcd's serving, peer and client
//     certificates.
//   - kubelet-serving CA (server/tls/kubelet-serving-ca): kubelet serving
//     certificates, which the approver grants on a node's own word; only
//     the apiserver and metrics-server trust it (kubelet-ca-bundle.crt).
//   - apiservice CA (server/tls/apiservice-ca): the serving certificates of
//     the aggregated APIs monokube deploys (metrics-server).
//
// Where it lives (every path from control.Creds, under --data-dir): the
// CAs, leaves and service-account keys in server/tls (etcd's in
// server/tls/etcd), the encryption and authentication configs and the
// kubeconfigs in server/cred, the server's own node's certificates in
// agent/tls and its kubeconfigs in agent/etc. Keys and kubeconfigs are
// 0600, the directories 0700.
//
// Init makes or loads the identity when a server starts, Load reads a
// complete one without writing; Identity.Bundle is the identity proper as
// one value, which a joining server writes (Bundle.Write) before its Init
// and a snapshot will keep. Init and Load return an Identity, which the
// server wiring, the join manifest and the bundle share.
package identity
