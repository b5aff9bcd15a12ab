package control

import (
	"fmt"
	"strings"

	"github.com/monokube/monokube/internal/pki"
)

// Pod Security levels --pod-security takes: the level enforced in every
// namespace that does not set its own (kube-system is exempt).
const (
	PodSecurityPrivileged = "privileged"
	PodSecurityBaseline   = "baseline"
	PodSecurityRestricted = "restricted"
)

// AdmissionConfig renders the apiserver's AdmissionConfiguration: Pod
// Security enforces level by default and audits and warns at restricted;
// kube-system, where the addons run, is exempt. A namespace's own
// pod-security.kubernetes.io labels win, as upstream.
func AdmissionConfig(level string) []byte {
	return fmt.Appendf(nil, `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults:
        enforce: %s
        enforce-version: latest
        audit: restricted
        audit-version: latest
        warn: restricted
        warn-version: latest
      exemptions:
        usernames: []
        runtimeClasses: []
        namespaces: [kube-system]
`, level)
}

// AuditPolicy is the default audit policy: who read or changed Secrets,
// ConfigMaps and tokens (metadata only, never their content); RBAC,
// certificate and node changes in full; every other write and user read at
// metadata; nothing for health probes, events, the control plane's and
// nodes' own reads and nodes' lease renewals, which would drown the rest.
func AuditPolicy() []byte {
	return []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version"]
  - level: None
    resources: [{group: "", resources: [events]}, {group: events.k8s.io, resources: [events]}]
  - level: None
    userGroups: [system:nodes]
    verbs: [get, list, watch, update, patch]
    resources: [{group: coordination.k8s.io, resources: [leases]}, {group: "", resources: [nodes/status]}]
  - level: None
    users: [system:kube-controller-manager, system:kube-scheduler, system:kube-proxy, system:apiserver]
    verbs: [get, list, watch]
  - level: None
    userGroups: [system:nodes, system:serviceaccounts:kube-system]
    verbs: [get, list, watch]
  - level: Metadata
    resources:
      - {group: "", resources: [secrets, configmaps, serviceaccounts/token]}
      - {group: authentication.k8s.io, resources: [tokenreviews]}
  - level: RequestResponse
    verbs: [create, update, patch, delete, deletecollection]
    resources:
      - {group: rbac.authorization.k8s.io}
      - {group: certificates.k8s.io}
      - {group: "", resources: [nodes]}
  - level: Metadata
`)
}

// tlsFlags are the TLS policy as component flags.
func tlsFlags() Flags {
	return Flags{"tls-min-version": pki.TLSMinVersion, "tls-cipher-suites": strings.Join(pki.CipherSuites(), ",")}
}
