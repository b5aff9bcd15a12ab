package apilb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
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

// newProber asks each server's /readyz (open to anonymous clients) over
// TLS verified against the cluster's server CA bundle in caFile, read
// again for each connection.
func newProber(caFile string) (func(ctx context.Context, addr string) error, error) {
	if _, err := readPool(caFile); err != nil {
		return nil, err
	}
	verify := func(cs tls.ConnectionState) error {
		pool, err := readPool(caFile)
		if err != nil {
			return err
		}
		opts := x509.VerifyOptions{Roots: pool, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err = cs.PeerCertificates[0].Verify(opts)
		return err
	}
	// Verified by verify, against the file as it is at each handshake.
	return HTTPSProbe(&tls.Config{InsecureSkipVerify: true, VerifyConnection: verify, MinVersion: tls.VersionTLS12}, "/readyz"), nil //nolint:gosec // see verify
}

// readPool reads the PEM bundle in file as a certificate pool.
func readPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the server CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("no certificate in the server CA bundle %s", file)
	}
	return pool, nil
}

// HTTPSProbe is a health probe (Config.Probe) that GETs path over TLS
// with tlsCfg from the server at addr and wants 200 within probeTimeout.
// Each probe makes its own connection, as a client would.
func HTTPSProbe(tlsCfg *tls.Config, path string) func(ctx context.Context, addr string) error {
	client := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
	return func(ctx context.Context, addr string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		return nil
	}
}

// probeLoop probes every server each probeInterval until ctx ends.
func (lb *LB) probeLoop(ctx context.Context) {
	probe := lb.cfg.Probe
	if probe == nil {
		var err error
		if probe, err = newProber(lb.cfg.ServerCAFile); err != nil {
			lb.log.Warn("apiserver health probes are off: servers count as down only when a dial fails", "err", err)
			return
		}
	}
	t := time.NewTicker(lb.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lb.probeAll(ctx, probe)
		}
	}
}

func (lb *LB) probeAll(ctx context.Context, probe func(context.Context, string) error) {
	var wg sync.WaitGroup
	var changed atomic.Bool
	for _, addr := range lb.pool.addrs() {
		wg.Go(func() {
			err := probe(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			flipped, drop := lb.pool.probed(addr, err)
			if flipped && err != nil {
				lb.log.Warn(lb.cfg.What+" is down", "server", addr, "err", err, "connections closed", len(drop))
			} else if flipped {
				lb.log.Info(lb.cfg.What+" is up again", "server", addr)
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
