package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig loads the node's admin kubeconfig and dials through the node's
// network namespace, so the test process (on the host) can reach an
// apiserver that only listens inside it.
func (n *Node) RESTConfig() *rest.Config {
	n.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
	if err != nil {
		n.t.Fatalf("load kubeconfig: %v", err)
	}
	cfg.Dial = n.NS.DialContext
	cfg.Timeout = 10 * time.Second
	return cfg
}

// Client is a clientset for the node's apiserver.
func (n *Node) Client() *kubernetes.Clientset {
	n.t.Helper()
	c, err := n.FreshClient()
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

// FreshClient is a clientset made from the node's admin kubeconfig as the
// file is now (through the node's network namespace, requests bounded to
// 10 s), failing no test: for loops in the background that follow a
// renewal or rotation of the admin's certificate.
func (n *Node) FreshClient() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Dial, cfg.Timeout = n.NS.DialContext, 10*time.Second
	return kubernetes.NewForConfig(cfg)
}

// AnonymousGet requests https://<node-ip>:<port><path> with no credentials
// (trusting the cluster CA) and returns the HTTP status code.
func (n *Node) AnonymousGet(ctx context.Context, port, path string) (int, error) {
	cfg := n.RESTConfig()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cfg.CAData)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     n.NS.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+n.NS.IP+":"+port+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// WaitReadyz waits until the apiserver answers /readyz with ok and returns
// how long that took.
func (n *Node) WaitReadyz(timeout time.Duration) time.Duration {
	n.t.Helper()
	var client *kubernetes.Clientset
	return n.WaitFor(timeout, "apiserver /readyz", func(ctx context.Context) (bool, error) {
		if client == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
			if err != nil {
				return false, err // kubeconfig not written yet
			}
			cfg.Dial, cfg.Timeout = n.NS.DialContext, 2*time.Second
			if client, err = kubernetes.NewForConfig(cfg); err != nil {
				return false, err
			}
		}
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", err
	})
}

// Answers reports whether anything accepts a TCP connection on port of
// n's IP (within 3 s).
func Answers(ctx context.Context, n *Node, port string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := n.NS.DialContext(ctx, "tcp", net.JoinHostPort(n.NS.IP, port))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
