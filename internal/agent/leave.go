package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/monokube/monokube/internal/join"
)

// leaveTimeout bounds Leave: an unreachable server must not hold up an
// uninstall.
const leaveTimeout = 15 * time.Second

// Leave deletes this node's Node object from its cluster, as the node
// itself (its kubelet credentials in kubeconfig): the cluster forgets a
// node that is uninstalled. The node's agent is stopped by then, and with
// it the load balancer its kubeconfig names, so Leave asks the servers the
// balancer knew (servers, host:port) one after the other. It asks the
// server who the credentials belong to rather than trusting a config
// file's node name.
func Leave(ctx context.Context, kubeconfig string, servers []string) error {
	ctx, cancel := context.WithTimeout(ctx, leaveTimeout)
	defer cancel()
	client, name, err := whoAmI(ctx, kubeconfig, servers)
	if err != nil {
		return err
	}
	// Marked as leaving first: the approver then frees the node's name for a
	// later join (an admin's `kubectl delete node` does not).
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, join.LeavingAnnotation, time.Now().UTC().Format(time.RFC3339))
	_, err = client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("mark node %s as leaving: %w", name, err)
	}
	err = client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	return nil
}

// whoAmI finds a server that answers the node's credentials, and the
// node's name as that server sees it.
func whoAmI(ctx context.Context, kubeconfig string, servers []string) (kubernetes.Interface, string, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, "", fmt.Errorf("load node credentials: %w", err)
	}
	rc.Timeout = leaveTimeout / 3
	hosts := []string{rc.Host}
	for _, s := range servers {
		hosts = append(hosts, "https://"+s)
	}
	var errs []error
	for _, h := range hosts {
		c := rest.CopyConfig(rc)
		c.Host = h
		client, err := kubernetes.NewForConfig(c)
		if err != nil {
			return nil, "", err
		}
		review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h, err))
			continue
		}
		name, ok := strings.CutPrefix(review.Status.UserInfo.Username, "system:node:")
		if !ok {
			return nil, "", fmt.Errorf("credentials in %s are %q, not a node's", kubeconfig, review.Status.UserInfo.Username)
		}
		return client, name, nil
	}
	return nil, "", fmt.Errorf("ask the servers who this node is: %w", errors.Join(errs...))
}
