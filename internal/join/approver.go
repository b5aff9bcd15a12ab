package join

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"

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
	"k8s.io/kubernetes/pkg/apis/certificates"
)

// Approver decides on the node CSRs upstream leaves alone:
//   - a joining node's first client certificate (signer
//     kube-apiserver-client-kubelet, requested with a join token): approved
//     for system:node:<name> only while no Node <name> exists, so a token
//     cannot take over a node that is in the cluster, and only for a name
//     the Policy allows;
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
	log    *slog.Logger
}

// NewApprover returns the CSR approver component.
func NewApprover(client kubernetes.Interface, policy Policy, log *slog.Logger) *Approver {
	return &Approver{client: client, policy: policy, log: log}
}

// Name implements lifecycle.Component.
func (*Approver) Name() string { return "node CSR approver" }

// Run watches CSRs and decides on each pending node CSR once.
func (a *Approver) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(a.client, 0)
	nodes := factory.Core().V1().Nodes().Lister()
	csrs := factory.Certificates().V1().CertificateSigningRequests()
	queue := make(chan *certificatesv1.CertificateSigningRequest, 64)
	enqueue := func(o any) {
		if csr, ok := o.(*certificatesv1.CertificateSigningRequest); ok && pending(csr) {
			select {
			case queue <- csr:
			case <-ctx.Done():
			}
		}
	}
	if _, err := csrs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
	}); err != nil {
		return fmt.Errorf("watch CSRs: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	factory.WaitForCacheSync(ctx.Done())
	for {
		select {
		case <-ctx.Done():
			return nil
		case csr := <-queue:
			a.decide(ctx, csr, nodes)
		}
	}
}

func (a *Approver) decide(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, nodes listerscorev1.NodeLister) {
	var reason error
	switch csr.Spec.SignerName {
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		if !strings.HasPrefix(csr.Spec.Username, "system:bootstrap:") {
			return // a node renewing its own certificate: the controller-manager's job
		}
		reason = CheckJoinCSR(csr, nodes, a.policy)
	case certificatesv1.KubeletServingSignerName:
		reason = CheckServingCSR(csr, nodes, a.policy)
	default:
		return
	}
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
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		a.log.Error("cannot record decision on node CSR", "csr", csr.Name, "err", err)
	}
}

// CheckJoinCSR checks a client-certificate CSR made with a join token.
func CheckJoinCSR(csr *certificatesv1.CertificateSigningRequest, nodes listerscorev1.NodeLister, p Policy) error {
	if !slices.Contains(csr.Spec.Groups, NodesGroup) {
		return fmt.Errorf("requester %s is not a monokube join token", csr.Spec.Username)
	}
	req, err := parse(csr)
	if err != nil {
		return err
	}
	if err := certificates.ValidateKubeletClientCSR(req, usages(csr)); err != nil {
		return fmt.Errorf("not a kubelet client CSR: %w", err)
	}
	name := strings.TrimPrefix(req.Subject.CommonName, "system:node:")
	if err := p.CheckNodeName(name); err != nil {
		return err
	}
	if _, err := nodes.Get(name); err == nil {
		return fmt.Errorf("node %s is already in the cluster: delete it (kubectl delete node %s) before it joins again", name, name)
	}
	return nil
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
		return fmt.Errorf("node %s reports no addresses yet", name)
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

func usages(csr *certificatesv1.CertificateSigningRequest) sets.String {
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
