package mirror

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/monokube/monokube/internal/pki"
)

// Client asks other nodes' mirrors, as a node: with the node's kubelet
// client certificate, verifying the mirrors' kubelet serving certificates.
type Client struct {
	http *http.Client
}

// NewClient is a Client with the CA bundle that verifies the mirrors and
// this node's client certificate and key (the same file twice when it
// holds both).
func NewClient(caFile, certFile, keyFile string) (*Client, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("the CA of the nodes' serving certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("this node's client certificate: %w", err)
	}
	suites, err := pki.CipherSuiteIDs()
	if err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: suites, RootCAs: pool, Certificates: []tls.Certificate{cert}}
	return &Client{http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}}, nil
}

// Images lists the images of the node whose mirror is at addr
// (host:port), from ImagesPath.
func (c *Client) Images(ctx context.Context, addr string) ([]Image, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+ImagesPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s: %s", addr, resp.Status, body)
	}
	var out struct {
		Images []Image `json:"images"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: the image list: %w", addr, err)
	}
	return out.Images, nil
}

// Close releases the client's connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }
