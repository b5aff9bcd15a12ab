package apilb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Probe timing: with downAfter failures in a row, a server that stops
// answering without closing its connections (a machine gone, a network
// cut) is given up within about probeInterval*downAfter + probeTimeout.
const (
	probeInterval = 5 * time.Second
	probeTimeout  = 3 * time.Second
)

// prober asks each server's /readyz (open to anonymous clients) over TLS
// verified against the cluster's server CA.
type prober struct{ client *http.Client }

func newProber(serverCA []byte) (*prober, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(serverCA) {
		return nil, fmt.Errorf("no certificate in the server CA bundle")
	}
	return &prober{client: &http.Client{
		Timeout: probeTimeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true, // each probe makes its own connection, as a client would
		},
	}}, nil
}

// probe returns nil if the apiserver at addr is ready.
func (p *prober) probe(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// probeLoop probes every server each probeInterval until ctx ends.
func (lb *LB) probeLoop(ctx context.Context) {
	p, err := newProber(lb.cfg.ServerCA)
	if err != nil {
		lb.log.Warn("apiserver health probes are off: servers count as down only when a dial fails", "err", err)
		return
	}
	t := time.NewTicker(lb.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lb.probeAll(ctx, p)
		}
	}
}

func (lb *LB) probeAll(ctx context.Context, p *prober) {
	var wg sync.WaitGroup
	var changed atomic.Bool
	for _, addr := range lb.pool.addrs() {
		wg.Go(func() {
			err := p.probe(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			flipped, drop := lb.pool.probed(addr, err)
			if flipped && err != nil {
				lb.log.Warn("apiserver is down", "server", addr, "err", err, "connections closed", len(drop))
			} else if flipped {
				lb.log.Info("apiserver is up again", "server", addr)
			}
			for _, c := range drop {
				_ = c.Close()
			}
			if flipped {
				changed.Store(true)
			}
		})
	}
	wg.Wait()
	if changed.Load() {
		lb.save()
	}
}
