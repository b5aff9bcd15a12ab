package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifest bounds the manifests and indexes the handler reads whole
// (containerd's own limit for a manifest is 4 MiB).
const maxManifest = 4 << 20

// Handler answers the OCI distribution API's pulls from Store. Tags are
// resolved only for a request naming its registry (the ns query parameter
// containerd adds when it asks a mirror), and never the tag latest: a tag
// that moves would be served as whichever copy a node happens to hold.
type Handler struct {
	Store Store
	Log   *slog.Logger

	verified verifiedBlobs
}

// request is a parsed pull: GET or HEAD of /v2/<name>/<kind>/<ref>.
type request struct {
	name, kind, ref, ns string
	head                bool
}

// ServeHTTP implements http.Handler: it answers, then logs the request
// with the peer that made it (its certificate's name) and the outcome.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	h.serve(rec, r)
	h.Log.Info("served", "peer", peer(r), "method", r.Method, "path", r.URL.Path, "ns", r.URL.Query().Get("ns"),
		"status", rec.status, "bytes", rec.bytes, "took", time.Since(start).Round(time.Microsecond))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this mirror serves pulls only")
		return
	}
	switch r.URL.Path {
	case "/v2/", "/v2":
		return
	case ImagesPath:
		h.list(r.Context(), w)
		return
	}
	switch req, ok := parse(r); {
	case !ok:
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "not a pull of a manifest or blob: "+r.URL.Path)
	case req.kind == "manifests":
		h.manifest(r.Context(), w, req)
	default:
		h.blob(w, r, req)
	}
}

// ImagesPath is where a mirror lists the images its node holds (JSON:
// {"images": [Image, …]}), for `monokube images ls`.
const ImagesPath = "/monokube/v1/images"

// list answers ImagesPath.
func (h *Handler) list(ctx context.Context, w http.ResponseWriter) {
	imgs, err := h.Store.List(ctx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Images []Image `json:"images"`
	}{imgs})
}

// parse splits /v2/<name>/(manifests|blobs)/<ref>; <name> may hold slashes.
func parse(r *http.Request) (request, bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		return request{}, false
	}
	for _, kind := range []string{"manifests", "blobs"} {
		if i := strings.LastIndex(rest, "/"+kind+"/"); i > 0 {
			req := request{name: rest[:i], kind: kind, ref: rest[i+len(kind)+2:], ns: r.URL.Query().Get("ns"), head: r.Method == http.MethodHead}
			return req, req.ref != "" && !strings.Contains(req.ref, "/")
		}
	}
	return request{}, false
}

// manifest answers a manifest or index by digest, or by tag through
// Store.Resolve.
func (h *Handler) manifest(ctx context.Context, w http.ResponseWriter, req request) {
	dgst, err := digest.Parse(req.ref)
	mediaType := ""
	if err != nil {
		desc, err := h.resolve(ctx, req)
		if err != nil {
			writeStoreError(w, err, "MANIFEST_UNKNOWN", "no manifest "+req.name+":"+req.ref)
			return
		}
		dgst, mediaType = desc.Digest, desc.MediaType
	}
	data, err := h.read(ctx, dgst)
	if err != nil {
		writeStoreError(w, err, "MANIFEST_UNKNOWN", "no manifest "+dgst.String())
		return
	}
	if mediaType == "" {
		mediaType = sniffMediaType(data)
	}
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Docker-Content-Digest", dgst.String())
	if !req.head {
		_, _ = w.Write(data) // a peer that went away is its own concern
	}
}

// errTagRefused is a tag the handler does not resolve.
var errTagRefused = fmt.Errorf("%w: tag not served", errdefs.ErrNotFound)

// resolve is the descriptor of the tag of req in the registry ns.
func (h *Handler) resolve(ctx context.Context, req request) (desc ocispec.Descriptor, err error) {
	if req.ns == "" || req.ref == "latest" {
		return desc, errTagRefused
	}
	named, err := reference.ParseNormalizedNamed(req.ns + "/" + req.name)
	if err != nil {
		return desc, fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	}
	tagged, err := reference.WithTag(named, req.ref)
	if err != nil {
		return desc, fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	}
	return h.Store.Resolve(ctx, tagged.String())
}

// read reads a manifest whole and checks its digest.
func (h *Handler) read(ctx context.Context, dgst digest.Digest) ([]byte, error) {
	b, err := h.Store.Open(ctx, dgst)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if b.Size() > maxManifest {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than a manifest", errdefs.ErrNotFound, dgst, b.Size())
	}
	data, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	if err != nil {
		return nil, err
	}
	if got := dgst.Algorithm().FromBytes(data); got != dgst {
		h.Log.Warn("a manifest in the content store does not match its digest: not served", "digest", dgst, "content", got)
		return nil, fmt.Errorf("%w: %s does not match its digest", errdefs.ErrNotFound, dgst)
	}
	return data, nil
}

// blob answers a blob by digest, after checking the whole of it against
// the digest (once per version of a Versioned blob), with Range support
// (http.ServeContent).
func (h *Handler) blob(w http.ResponseWriter, r *http.Request, req request) {
	dgst, err := digest.Parse(req.ref)
	if err != nil {
		writeError(w, http.StatusNotFound, "DIGEST_INVALID", "not a digest: "+req.ref)
		return
	}
	b, err := h.Store.Open(r.Context(), dgst)
	if err != nil {
		writeStoreError(w, err, "BLOB_UNKNOWN", "no blob "+dgst.String())
		return
	}
	defer b.Close()
	content := io.NewSectionReader(b, 0, b.Size())
	if !h.verified.has(dgst, b) {
		v := dgst.Verifier()
		if _, err := io.Copy(v, content); err != nil {
			writeStoreError(w, err, "BLOB_UNKNOWN", "no blob "+dgst.String())
			return
		}
		if !v.Verified() {
			h.Log.Warn("a blob in the content store does not match its digest: not served", "digest", dgst)
			writeError(w, http.StatusNotFound, "BLOB_UNKNOWN", "no blob "+dgst.String())
			return
		}
		h.verified.add(dgst, b)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", dgst.String())
	http.ServeContent(w, r, "", time.Time{}, content)
}

// sniffMediaType is the mediaType field of a manifest or index, which the
// content store does not keep beside it.
func sniffMediaType(data []byte) string {
	var m struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	switch {
	case json.Unmarshal(data, &m) != nil:
		return "application/octet-stream"
	case m.MediaType != "":
		return m.MediaType
	case m.Manifests != nil:
		return "application/vnd.oci.image.index.v1+json"
	}
	return "application/vnd.oci.image.manifest.v1+json"
}

// writeStoreError answers err from the store: 404 with code for content
// the node does not hold, 500 for anything else.
func writeStoreError(w http.ResponseWriter, err error, code, message string) {
	if errdefs.IsNotFound(err) {
		writeError(w, http.StatusNotFound, code, message)
		return
	}
	writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
}

// writeError answers with the distribution API's error body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Errors []apiError `json:"errors"`
	}{[]apiError{{code, message}}})
}

// peer is who asked: the common name of its client certificate.
func peer(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return r.TLS.PeerCertificates[0].Subject.CommonName
}

// recorder keeps the status and body size of a response, for the log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}
