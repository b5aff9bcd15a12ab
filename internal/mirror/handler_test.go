package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeStore holds images by name and content by digest.
type fakeStore struct {
	images  map[string]ocispec.Descriptor
	content map[digest.Digest][]byte
}

func (s *fakeStore) Resolve(_ context.Context, name string) (ocispec.Descriptor, error) {
	d, ok := s.images[name]
	if !ok {
		return d, fmt.Errorf("image %s: %w", name, errdefs.ErrNotFound)
	}
	return d, nil
}

func (s *fakeStore) Open(_ context.Context, dgst digest.Digest) (Blob, error) {
	data, ok := s.content[dgst]
	if !ok {
		return nil, fmt.Errorf("content %s: %w", dgst, errdefs.ErrNotFound)
	}
	return blob{bytes.NewReader(data)}, nil
}

func (s *fakeStore) List(context.Context) ([]Image, error) {
	var out []Image
	for name, d := range s.images {
		_, complete := s.content[d.Digest]
		out = append(out, Image{Name: name, Digest: d.Digest, Complete: complete})
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

type blob struct{ *bytes.Reader }

func (blob) Close() error { return nil }

// image puts an image of one layer in s as name and returns the layer's
// and the manifest's digests and the manifest.
func (s *fakeStore) image(name string, layer []byte) (layerDigest, manifestDigest digest.Digest, manifest []byte) {
	layerDigest = digest.FromBytes(layer)
	manifest, _ = json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: layerDigest, Size: int64(len(layer))}}})
	manifestDigest = digest.FromBytes(manifest)
	s.content[layerDigest], s.content[manifestDigest] = layer, manifest
	s.images[name] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: manifestDigest, Size: int64(len(manifest))}
	return layerDigest, manifestDigest, manifest
}

func newMirror(t *testing.T) (*fakeStore, string) {
	t.Helper()
	s := &fakeStore{images: map[string]ocispec.Descriptor{}, content: map[digest.Digest][]byte{}}
	srv := httptest.NewServer(&Handler{Store: s, Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func do(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// A pull as containerd makes it from a mirror: the tag resolved with ns,
// the manifest and the layer by digest, a layer resumed with Range.
func TestPull(t *testing.T) {
	s, url := newMirror(t)
	layer := bytes.Repeat([]byte("layer "), 1000)
	layerDigest, manifestDigest, manifest := s.image("docker.io/library/echo:1.0", layer)

	if resp, _ := do(t, http.MethodGet, url+"/v2/"); resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body := do(t, http.MethodHead, url+"/v2/library/echo/manifests/1.0?ns=docker.io")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != manifestDigest.String() ||
		resp.Header.Get("Content-Type") != ocispec.MediaTypeImageManifest || resp.ContentLength != int64(len(manifest)) || len(body) != 0 {
		t.Errorf("HEAD of the tag: %d %v, %d body bytes; want the manifest's digest, type and length, no body", resp.StatusCode, resp.Header, len(body))
	}
	resp, body = do(t, http.MethodGet, url+"/v2/library/echo/manifests/"+manifestDigest.String()+"?ns=docker.io")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, manifest) || resp.Header.Get("Content-Type") != ocispec.MediaTypeImageManifest {
		t.Errorf("GET of the manifest by digest: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = do(t, http.MethodGet, url+"/v2/library/echo/blobs/"+layerDigest.String()+"?ns=docker.io")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, layer) || resp.Header.Get("Content-Encoding") != "" ||
		resp.Header.Get("Docker-Content-Digest") != layerDigest.String() {
		t.Errorf("GET of the layer: %d %v, %d bytes", resp.StatusCode, resp.Header, len(body))
	}
	resp, body = do(t, http.MethodGet, url+"/v2/library/echo/blobs/"+layerDigest.String(), "Range", "bytes=100-")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, layer[100:]) {
		t.Errorf("GET of the layer from byte 100: %d, %d bytes; want 206 and the rest", resp.StatusCode, len(body))
	}
	if resp, _ := do(t, http.MethodGet, url+"/v2/library/echo/blobs/"+layerDigest.String(), "Range", "bytes=99999-"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("a range past the end: %d, want 416", resp.StatusCode)
	}
}

// What the mirror does not hold, tags it does not resolve and anything
// but a pull get the error containerd moves on from (404) or 405, with
// the API's error code.
func TestRefusals(t *testing.T) {
	s, url := newMirror(t)
	_, manifestDigest, _ := s.image("docker.io/library/echo:latest", []byte("layer"))
	s.images["docker.io/library/echo:1.0"] = s.images["docker.io/library/echo:latest"]
	missing := digest.FromString("missing")
	for _, c := range []struct {
		what, method, path string
		status             int
		code               string
	}{
		{"a tag without ns", http.MethodGet, "/v2/library/echo/manifests/1.0", 404, "MANIFEST_UNKNOWN"},
		{"the tag latest", http.MethodGet, "/v2/library/echo/manifests/latest?ns=docker.io", 404, "MANIFEST_UNKNOWN"},
		{"a tag of another registry", http.MethodGet, "/v2/library/echo/manifests/1.0?ns=quay.io", 404, "MANIFEST_UNKNOWN"},
		{"a blob not held", http.MethodGet, "/v2/library/echo/blobs/" + missing.String(), 404, "BLOB_UNKNOWN"},
		{"a manifest not held", http.MethodHead, "/v2/library/echo/manifests/" + missing.String(), 404, ""},
		{"a blob by tag", http.MethodGet, "/v2/library/echo/blobs/1.0", 404, "DIGEST_INVALID"},
		{"another path", http.MethodGet, "/v2/_catalog", 404, "NAME_UNKNOWN"},
		{"a push", http.MethodPut, "/v2/library/echo/manifests/2.0?ns=docker.io", 405, "UNSUPPORTED"},
		{"an upload", http.MethodPost, "/v2/library/echo/blobs/uploads/", 405, "UNSUPPORTED"},
		{"a delete", http.MethodDelete, "/v2/library/echo/manifests/" + manifestDigest.String(), 405, "UNSUPPORTED"},
	} {
		resp, body := do(t, c.method, url+c.path)
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.code) {
			t.Errorf("%s: %d %s; want %d %s", c.what, resp.StatusCode, body, c.status, c.code)
		}
	}
}

// Content that does not match its digest (a tampered copy) is never
// sent: 404, so that containerd asks the next node.
func TestTamperedContentIsNotServed(t *testing.T) {
	s, url := newMirror(t)
	layerDigest, manifestDigest, _ := s.image("docker.io/library/echo:1.0", []byte("the layer"))
	s.content[layerDigest] = []byte("the LAYER")
	if resp, body := do(t, http.MethodGet, url+"/v2/library/echo/blobs/"+layerDigest.String()); resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "LAYER") {
		t.Errorf("GET of a tampered layer: %d %q; want 404 and none of it", resp.StatusCode, body)
	}
	if resp, _ := do(t, http.MethodHead, url+"/v2/library/echo/blobs/"+layerDigest.String()); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD of a tampered layer: %d; want 404", resp.StatusCode)
	}
	s.content[manifestDigest] = append(s.content[manifestDigest], ' ')
	if resp, _ := do(t, http.MethodGet, url+"/v2/library/echo/manifests/1.0?ns=docker.io"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a tampered manifest by tag: %d; want 404", resp.StatusCode)
	}
}

// The mirror lists the images its node holds.
func TestList(t *testing.T) {
	s, url := newMirror(t)
	_, echo, _ := s.image("docker.io/library/echo:1.0", []byte("layer"))
	s.images["monokube.local/pause:3.10"] = ocispec.Descriptor{Digest: digest.FromString("gone")}
	resp, body := do(t, http.MethodGet, url+ImagesPath)
	var got struct{ Images []Image }
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s %v", ImagesPath, resp.StatusCode, body, err)
	}
	want := []Image{{Name: "docker.io/library/echo:1.0", Digest: echo, Complete: true}, {Name: "monokube.local/pause:3.10", Digest: digest.FromString("gone")}}
	if !slices.Equal(got.Images, want) {
		t.Errorf("images = %+v, want %+v", got.Images, want)
	}
}

// fileStore serves blobs from files, as Containerd does with a Root.
type fileStore struct {
	fakeStore
	files map[digest.Digest]string
}

func (s *fileStore) Open(_ context.Context, dgst digest.Digest) (Blob, error) {
	path, ok := s.files[dgst]
	if !ok {
		return nil, fmt.Errorf("content %s: %w", dgst, errdefs.ErrNotFound)
	}
	return openFileBlob(path)
}

// A blob file is hashed once per version: an in-place change (which
// moves its change time) is caught at the next request, and a blob that
// says its version is unchanged is not hashed again.
func TestVerifiedOncePerVersion(t *testing.T) {
	layer := bytes.Repeat([]byte("layer "), 1000)
	dgst := digest.FromBytes(layer)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, layer, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &fileStore{files: map[digest.Digest]string{dgst: path}}
	srv := httptest.NewServer(&Handler{Store: s, Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	t.Cleanup(srv.Close)
	url := srv.URL + "/v2/echo/blobs/" + dgst.String()
	if resp, body := do(t, http.MethodGet, url); resp.StatusCode != http.StatusOK || !bytes.Equal(body, layer) {
		t.Fatalf("GET of the layer file: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, body := do(t, http.MethodGet, url, "Range", "bytes=6-11"); resp.StatusCode != http.StatusPartialContent || string(body) != "layer " {
		t.Errorf("ranged GET of the verified layer: %d %q", resp.StatusCode, body)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if resp, body := do(t, http.MethodGet, url); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of the layer changed in place: %d, %d bytes; want 404", resp.StatusCode, len(body))
	}

	// The cache itself: a Versioned blob verified at a version is not
	// hashed again at that version, and is at another.
	var v verifiedBlobs
	good := versionedBlob{blob{bytes.NewReader(layer)}, "1"}
	v.add(dgst, good)
	if !v.has(dgst, good) || v.has(dgst, versionedBlob{good.blob, "2"}) || v.has(dgst, good.blob) || v.has(digest.FromString("other"), good) {
		t.Error("verifiedBlobs: want a hit for the same digest and version only, and none for a blob without versions")
	}
}

type versionedBlob struct {
	blob
	version string
}

func (b versionedBlob) Version() string { return b.version }
