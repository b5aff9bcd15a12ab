package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Prober polls the control plane's HTTPS health endpoints, trusting only the
// cluster's serving CA and presenting the admin client certificate.
type Prober struct {
	client   *http.Client
	interval time.Duration
}

// NewProber returns a Prober that trusts roots and authenticates with the
// certificate cert returns (at each connection: a renewed one is used).
func NewProber(roots *x509.CertPool, cert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *Prober {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, GetClientCertificate: cert, MinVersion: tls.VersionTLS12},
		// Keep-alives off: a probe must not hold a connection that delays a
		// component's graceful shutdown.
		DisableKeepAlives: true,
	}
	return &Prober{client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, interval: 100 * time.Millisecond}
}

// Wait polls url until it answers 200 OK. When ctx ends first it returns the
// last failure, so the caller can say what was still wrong.
func (p *Prober) Wait(ctx context.Context, url string) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		err := p.get(ctx, url)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %w)", url, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

func (p *Prober) get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}
