package identity

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/pki"
)

// A running server renews its leaves itself: Renew re-issues those due
// and rewrites the kubeconfigs; every component then reads the new files
// by itself, so nothing restarts. kube-apiserver, the controller-manager
// and the scheduler reload their serving certificates and the files of
// their client certificates (the kubeconfigs of the controller-manager,
// scheduler, kubelet and kube-proxy name files for that reason); etcd
// reads its certificates at each handshake; client-go closes connections
// made with a client certificate that changed; the kubelet reloads its
// serving certificate. Only the admin kubeconfigs embed their
// certificate, so that they can be copied off the machine: copies made
// before a renewal stop working when the old certificate expires.

// RotateRequest is what `monokube certificate rotate` asks of a server:
// the services whose leaves to re-issue now. The running server carries
// it out within seconds; a stopped one at its next start.
type RotateRequest struct {
	ID       string   `json:"id"`
	Services []string `json:"services"`
}

// RotateResult is the server's answer to the request of the same ID.
type RotateResult struct {
	ID     string   `json:"id"`
	Issued []string `json:"issued"` // certificate files
	Error  string   `json:"error,omitempty"`
}

// RequestRotate writes a request to re-issue the leaves of services (all
// of them if empty) on the server whose data dir is l, and returns it.
func RequestRotate(l datadir.Layout, services []string) (RotateRequest, error) {
	for _, s := range services {
		if !slices.Contains(Services(), s) {
			return RotateRequest{}, fmt.Errorf("no service %q: give some of %s", s, strings.Join(Services(), ", "))
		}
	}
	if len(services) == 0 {
		services = Services()
	}
	return writeRequest(l, services)
}

// RequestCheck asks the server whose data dir is l to check its leaves
// now, as its daily check does, forcing none: after a CA rotation step,
// those the old CA signed no longer match and are re-issued, and the
// kubeconfigs and published CAs follow the CA files.
func RequestCheck(l datadir.Layout) (RotateRequest, error) { return writeRequest(l, []string{}) }

// writeRequest writes a request to force the leaves of services.
func writeRequest(l datadir.Layout, services []string) (RotateRequest, error) {
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return RotateRequest{}, err
	}
	r := RotateRequest{ID: hex.EncodeToString(id), Services: services}
	data, err := json.Marshal(r)
	if err != nil {
		return RotateRequest{}, err
	}
	// Under the lock: never between the server's read of a request and its
	// removal of it, which would drop this one.
	c := control.NewCreds(l)
	unlock, err := lockPKI(c)
	if err != nil {
		return RotateRequest{}, err
	}
	defer unlock()
	return r, fsutil.WriteFile(c.RotateRequest, data, 0o600)
}

// ReadRotateResult returns the server's answer to request id, or false
// while there is none.
func ReadRotateResult(l datadir.Layout, id string) (RotateResult, bool, error) {
	var r RotateResult
	data, err := os.ReadFile(control.NewCreds(l).RotateResult)
	if errors.Is(err, os.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, false, fmt.Errorf("read %s: %w", control.NewCreds(l).RotateResult, err)
	}
	return r, r.ID == id, nil
}

// RotatePending reports whether a `certificate rotate` request waits.
func (id *Identity) RotatePending() bool { return fsutil.Exists(id.Creds.RotateRequest) }

// Renew re-issues, on a running server, every leaf of cfg's control plane
// and own node that is due under cfg.Certs or no longer matches, and
// those of the services a waiting RotateRequest names (then answers it);
// it rewrites the kubeconfigs and returns the certificate files it issued.
func (id *Identity) Renew(cfg *config.Server, now time.Time, log *slog.Logger) ([]string, error) {
	unlock, err := lockPKI(id.Creds)
	if err != nil {
		return nil, err
	}
	defer unlock()
	req := readRotateRequest(id.Creds, log)
	_, issued, err := ensurePKI(cfg, id.Creds, id.Node, issue{life: cfg.Certs.Lifetime, now: now, force: req.Services}, log)
	if err == nil && (len(issued) > 0 || req.ID != "") { // a request may follow a CA's change
		err = id.writeKubeconfigs(cfg)
	}
	files := certFiles(issued)
	answerRotate(id.Creds, req, files, err, log)
	return files, err
}

// lockPKI takes the lock on the server's leaves.
func lockPKI(c control.Creds) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(c.PKILock), 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", c.PKILock, err)
	}
	return datadir.LockFile(c.PKILock)
}

// readRotateRequest is the waiting request, if any; an unreadable one is
// dropped with a warning (its sender times out and says so).
func readRotateRequest(c control.Creds, log *slog.Logger) RotateRequest {
	var r RotateRequest
	data, err := os.ReadFile(c.RotateRequest)
	if errors.Is(err, os.ErrNotExist) {
		return r
	}
	if err == nil {
		err = json.Unmarshal(data, &r)
	}
	if err != nil {
		log.Warn("dropped an unreadable certificate rotation request", "file", c.RotateRequest, "err", err)
		_ = os.Remove(c.RotateRequest)
		return RotateRequest{}
	}
	return r
}

// answerRotate writes the result of request r, if there was one, and
// removes the request.
func answerRotate(c control.Creds, r RotateRequest, issued []string, err error, log *slog.Logger) {
	if r.ID == "" {
		return
	}
	res := RotateResult{ID: r.ID, Issued: issued}
	if err != nil {
		res.Error = err.Error()
	}
	data, _ := json.Marshal(res) // plain strings: never fails
	if werr := fsutil.WriteFile(c.RotateResult, data, 0o600); werr != nil {
		log.Error("cannot answer the certificate rotation request", "err", werr)
		return
	}
	if err == nil {
		log.Info("rotated certificates on request", "services", strings.Join(r.Services, ","), "issued", len(issued))
	}
	_ = os.Remove(c.RotateRequest)
}

// certFiles names the certificate files of issued.
func certFiles(issued []pki.Files) []string {
	out := make([]string, len(issued))
	for i, f := range issued {
		out[i] = f.Cert()
	}
	return out
}
