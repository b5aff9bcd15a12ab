package join

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/kubernetes/pkg/apis/certificates"

	"github.com/monokube/monokube/internal/lifecycle"
)

// Approver decides on the node CSRs upstream leaves alone:
//   - a joining node's first client certificate (signer
//     kube-apiserver-client-kubelet, requested with a join token): approved
//     for system:node:<name> only by taking the name's claim (Claims: a
//     Lease created against the live API, so of two racing CSRs one wins),
//     which is held while a certificate of the name may be valid, so a
//     token cannot take over a node, nor a deleted node's name; and only
//     for a name the Policy allows;
//   - kubelet serving certificates (signer kubelet-serving, requested by
//     the node itself, signed by the kubelet-serving CA that nothing but
//     the apiserver and metrics-server trusts): approved only for the names
//     and IPs that node reports, no other node does and the Policy allows.
//
// Renewals of client certificates by the node itself are approved by the
// controller-manager (RBAC selfnodeclient). Everything else stays pending.
type Approver struct {
	client kubernetes.Interface
	policy Policy
	claims Claims
	log    *slog.Logger
}

// NewApprover returns the CSR approver component; certLifetime is the
// controller-manager's signing duration.
func NewApprover(client kubernetes.Interface, policy Policy, certLifetime time.Duration, log *slog.Logger) *Approver {
	return &Approver{client: client, policy: policy, log: log,
		claims: Claims{Client: client, Lifetime: certLifetime, Now: time.Now}}
}

var _ lifecycle.Component = (*Approver)(nil)

// Name implements lifecycle.Component.
func (*Approver) Name() string { return "csr-approver" }

// retryAfter is how long a serving CSR waits for its node's addresses.
const retryAfter = 5 * time.Second

// Run watches CSRs and decides on each pending node CSR once, retrying
// (rate-limited) when the API fails; it also keeps node-name claims in
// step with issued certificates and with nodes that leave.
func (a *Approver) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(a.client, 0)
	nodes := factory.Core().V1().Nodes()
	csrs := factory.Certificates().V1().CertificateSigningRequests()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	onCSR := func(o any) {
		if csr, ok := o.(*certificatesv1.CertificateSigningRequest); ok {
			queue.Add(csr.Name)
		}
	}
	if _, err := csrs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onCSR, UpdateFunc: func(_, o any) { onCSR(o) },
	}); err != nil {
		return fmt.Errorf("watch CSRs: %w", err)
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(o any) { a.nodeGone(ctx, o) }}); err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	factory.WaitForCacheSync(ctx.Done())
	go func() { <-ctx.Done(); queue.ShutDown() }()
	for {
		name, quit := queue.Get()
		if quit {
			return nil
		}
		a.handle(ctx, queue, name, csrs.Lister().Get, nodes.Lister())
	}
}

// handle decides on one CSR and schedules a retry when needed.
func (a *Approver) handle(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], name string,
	get func(string) (*certificatesv1.CertificateSigningRequest, error), nodes listerscorev1.NodeLister) {
	defer queue.Done(name)
	csr, err := get(name)
	if err != nil {
		queue.Forget(name) // deleted
		return
	}
	err = a.process(ctx, csr, nodes)
	var wait errWait
	switch {
	case errors.As(err, &wait):
		queue.Forget(name)
		queue.AddAfter(name, retryAfter)
	case err != nil:
		a.log.Warn("cannot decide on node CSR yet; retrying", "csr", name, "err", err)
		queue.AddRateLimited(name)
	default:
		queue.Forget(name)
	}
}

// errWait: the CSR cannot be decided yet (its node reports no addresses).
type errWait struct{ error }

// process decides on a pending node CSR, or records an issued kubelet
// client certificate in its node's claim.
func (a *Approver) process(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, nodes listerscorev1.NodeLister) error {
	if !pending(csr) {
		return a.recordIssued(ctx, csr)
	}
	var reason error
	switch csr.Spec.SignerName {
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		if !strings.HasPrefix(csr.Spec.Username, "system:bootstrap:") {
			return nil // a node renewing its own certificate: the controller-manager's job
		}
		name, key, err := CheckJoinCSR(csr, a.policy)
		if err == nil {
			err = a.claims.Take(ctx, name, key)
		}
		if err != nil && !isRefusal(err) {
			return err
		}
		reason = err
	case certificatesv1.KubeletServingSignerName:
		reason = CheckServingCSR(csr, nodes, a.policy)
		if errors.As(reason, new(errWait)) {
			return reason
		}
	default:
		return nil
	}
	return a.record(ctx, csr, reason)
}

// isRefusal tells a decision (deny) from a failure to reach the API (retry).
func isRefusal(err error) bool {
	var status apierrors.APIStatus
	return !errors.As(err, &status)
}

func (a *Approver) record(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, reason error) error {
	cond := certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "MonokubeApproved", Message: "node CSR checked by monokube",
	}
	if reason != nil {
		cond = certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue,
			Reason: "MonokubeDenied", Message: reason.Error(),
		}
		a.log.Warn("denied node CSR", "csr", csr.Name, "requester", csr.Spec.Username, "reason", reason)
	}
	csr = csr.DeepCopy()
	csr.Status.Conditions = append(csr.Status.Conditions, cond)
	_, err := a.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // decided elsewhere, or gone
	}
	return err
}

// recordIssued extends the claim of the node a kubelet client certificate
// was issued to, so its name stays held while the certificate is valid.
func (a *Approver) recordIssued(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName || len(csr.Status.Certificate) == 0 {
		return nil
	}
	certs, err := certutil.ParseCertsPEM(csr.Status.Certificate)
	if err != nil || len(certs) == 0 {
		return nil // not ours to judge
	}
	name, ok := strings.CutPrefix(certs[0].Subject.CommonName, "system:node:")
	if !ok {
		return nil
	}
	return a.claims.Extend(ctx, name, certs[0])
}

// nodeGone releases the claim of a node that deleted itself on leaving.
func (a *Approver) nodeGone(ctx context.Context, o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	n, ok := o.(*corev1.Node)
	if !ok || n.Annotations[LeavingAnnotation] == "" {
		return
	}
	if err := a.claims.Release(ctx, n.Name); err != nil {
		a.log.Warn("cannot release the name of a node that left", "node", n.Name, "err", err)
		return
	}
	a.log.Info("node left the cluster; its name is free", "node", n.Name)
}

// CheckJoinCSR checks a client-certificate CSR made with a join token and
// returns the node name it asks for and the hash of its key; whether the
// name is free is the claim's to decide (Claims.Take).
func CheckJoinCSR(csr *certificatesv1.CertificateSigningRequest, p Policy) (name, keyHash string, err error) {
	if !slices.Contains(csr.Spec.Groups, NodesGroup) {
		return "", "", fmt.Errorf("requester %s is not a monokube join token", csr.Spec.Username)
	}
	req, err := parse(csr)
	if err != nil {
		return "", "", err
	}
	if err := certificates.ValidateKubeletClientCSR(req, usages(csr)); err != nil {
		return "", "", fmt.Errorf("not a kubelet client CSR: %w", err)
	}
	name = strings.TrimPrefix(req.Subject.CommonName, "system:node:")
	if err := p.CheckNodeName(name); err != nil {
		return "", "", err
	}
	return name, KeyHash(req.RawSubjectPublicKeyInfo), nil
}

// CheckServingCSR checks a kubelet serving-certificate CSR.
func CheckServingCSR(csr *certificatesv1.CertificateSigningRequest, nodes listerscorev1.NodeLister, p Policy) error {
	req, err := parse(csr)
	if err != nil {
		return err
	}
	if err := certificates.ValidateKubeletServingCSR(req, usages(csr)); err != nil {
		return fmt.Errorf("not a kubelet serving CSR: %w", err)
	}
	if req.Subject.CommonName != csr.Spec.Username || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return fmt.Errorf("%s asked for a certificate of %s", csr.Spec.Username, req.Subject.CommonName)
	}
	name := strings.TrimPrefix(req.Subject.CommonName, "system:node:")
	all, err := nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	own, others := sets.New[string](), sets.New[string]()
	for _, n := range all {
		for _, addr := range n.Status.Addresses {
			if n.Name == name {
				own.Insert(addr.Address)
			} else {
				others.Insert(addr.Address)
			}
		}
	}
	if own.Len() == 0 {
		return errWait{fmt.Errorf("node %s reports no addresses yet", name)}
	}
	if len(req.URIs) > 0 || len(req.EmailAddresses) > 0 {
		return fmt.Errorf("node %s asked for URI or e-mail names, which a kubelet does not serve", name)
	}
	for _, san := range append(slices.Clone(req.DNSNames), ipStrings(req.IPAddresses)...) {
		if err := p.CheckServingSAN(san); err != nil {
			return fmt.Errorf("node %s asked for %s: %w", name, san, err)
		}
		if !own.Has(san) || others.Has(san) {
			return fmt.Errorf("node %s asked for %s, which is not its own address", name, san)
		}
	}
	return nil
}

func pending(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
			return false
		}
	}
	return true
}

func parse(csr *certificatesv1.CertificateSigningRequest) (*x509.CertificateRequest, error) {
	req, err := certificates.ParseCSR(csr.Spec.Request)
	if err != nil {
		return nil, fmt.Errorf("unreadable CSR: %w", err)
	}
	return req, nil
}

func usages(csr *certificatesv1.CertificateSigningRequest) sets.String { //nolint:staticcheck // upstream's ValidateKubelet*CSR take a sets.String
	u := sets.NewString()
	for _, k := range csr.Spec.Usages {
		u.Insert(string(k))
	}
	return u
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
