package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/monokube/monokube/scripts/mkimage/archive"
)

// writeTar writes files (path → content) as a tar at p.
func writeTar(t *testing.T, p string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(c)), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testBuilder(t *testing.T) *builder {
	t.Helper()
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "rootfs.tar"), map[string]string{
		"./etc/passwd": "root:x:0:0::/root:/bin/sh", "./etc/group": "root:x:0:\n", "./usr/bin/ls": "ELF"})
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "nnp"), []byte("ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in busybox: all mkimages runs of it is --list.
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), []byte("#!/bin/sh\necho sh ls sysctl busybox\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := newBuilder(options{rootfs: filepath.Join(dir, "rootfs.tar"), bin: filepath.Join(dir, "bin"), files: dir})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layerHeaders returns the headers and contents of img's top layer.
func layerHeaders(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hs, contents := map[string]*tar.Header{}, map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs, contents
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		hs[h.Name], contents[h.Name] = h, string(data)
	}
}

func TestLayerKeepsSetuidAndExtendsBaseFiles(t *testing.T) {
	b := testBuilder(t)
	img, err := b.build(imageSpec{names: []string{"x/nnp:1"}, from: debian, cmd: []string{"nnp"}, entries: []entry{
		{path: "/usr/local/bin/nnp", mode: 0o4755, bin: "nnp"},
		{path: "/etc/passwd", mode: 0o644, extend: true, text: "user:x:1000:1000::/:/bin/sh\n"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs, contents := layerHeaders(t, img)
	if h := hs["usr/local/bin/nnp"]; h == nil || h.Mode != 0o4755 || h.Uid != 0 {
		t.Errorf("nnp header %+v, want mode 04755 owned by root", h)
	}
	for _, dir := range []string{"usr/", "usr/local/", "usr/local/bin/", "etc/"} {
		if hs[dir] == nil || hs[dir].Typeflag != tar.TypeDir {
			t.Errorf("parent %s missing from the layer", dir)
		}
	}
	if got, want := contents["etc/passwd"], "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n"; got != want {
		t.Errorf("extended /etc/passwd = %q, want %q", got, want)
	}
	cfg, _ := img.ConfigFile()
	if strings.Join(cfg.Config.Cmd, " ") != "nnp" || cfg.OS != "linux" {
		t.Errorf("config %+v", cfg.Config)
	}
	if layers, _ := img.Layers(); len(layers) != 2 {
		t.Errorf("%d layers, want the shared base and the image's own", len(layers))
	}
}

func TestLayerRefusesDirectoriesOverBaseSymlinks(t *testing.T) {
	b := testBuilder(t)
	_, err := b.build(imageSpec{names: []string{"x/y:1"}, from: debian, entries: []entry{{path: "/bin/tool", mode: 0o755, bin: "nnp"}}})
	if err == nil || !strings.Contains(err.Error(), "/usr path") {
		t.Fatalf("err = %v, want a refusal naming the /usr path", err)
	}
}

func TestChildInheritsEntrypointAndSharesBase(t *testing.T) {
	b := testBuilder(t)
	parent, err := b.build(imageSpec{names: []string{"x/parent:1"}, from: debian, entrypoint: []string{"/agnhost"}, cmd: []string{"pause"}})
	if err != nil {
		t.Fatal(err)
	}
	child, err := b.build(imageSpec{names: []string{"x/child:1"}, from: "x/parent:1", cmd: []string{"test-webserver"},
		entries: []entry{{path: "/data.json", mode: 0o644, text: "{}"}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := child.ConfigFile()
	if strings.Join(cfg.Config.Entrypoint, " ") != "/agnhost" || strings.Join(cfg.Config.Cmd, " ") != "test-webserver" {
		t.Errorf("child config %v %v, want the parent's entrypoint and its own cmd", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	out := filepath.Join(t.TempDir(), "images.tar")
	p, _ := name.NewTag("x/parent:1")
	c, _ := name.NewTag("x/child:1")
	if err := archive.Write(out, map[name.Tag]v1.Image{p: parent, c: child}); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []name.Tag{p, c} {
		if _, err := tarball.ImageFromPath(out, &tag); err != nil {
			t.Errorf("archive lacks %s: %v", tag, err)
		}
	}
	if _, err := b.build(imageSpec{names: []string{"x/orphan:1"}, from: "x/none:1"}); err == nil {
		t.Error("an image whose parent is not listed before it was built")
	}
}

// TestCatalogueBuilds checks the real catalogue against a stand-in tree:
// every parent is listed before its children and every name is valid.
func TestCatalogueBuilds(t *testing.T) {
	b := testBuilder(t)
	for _, spec := range catalogue() {
		for i := range spec.entries {
			spec.entries[i].bin, spec.entries[i].file = "", "" // no programs here
		}
		if _, err := b.build(spec); err != nil {
			t.Errorf("%s: %v", spec.names[0], err)
		}
		for _, n := range spec.names {
			if _, err := name.NewTag(n, name.StrictValidation); err != nil {
				t.Errorf("name %q: %v", n, err)
			}
		}
	}
}

func TestBusyboxImageAndAlpineLikeBase(t *testing.T) {
	b := testBuilder(t)
	bb, err := b.build(imageSpec{names: []string{"x/busybox:1"}, from: scratch, applets: "/bin",
		entries: []entry{{path: "/bin/busybox", mode: 0o755, bin: "busybox"}}})
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := layerHeaders(t, bb)
	for _, a := range []string{"bin/sh", "bin/ls", "bin/sysctl"} {
		if h := hs[a]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("%s: %+v, want a link to busybox", a, h)
		}
	}
	if h := hs["bin/"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Error("a scratch image's /bin is a plain directory")
	}
	hs, _ = layerHeaders(t, b.built[alpine].img)
	if h := hs["usr/bin/sh"]; h == nil || h.Linkname != "busybox" {
		t.Errorf("alpine-like /usr/bin/sh = %+v, want a link to busybox", h)
	}
	if h := hs["usr/bin/sysctl"]; h == nil || h.Linkname != "busybox" {
		t.Errorf("alpine-like /usr/bin/sysctl = %+v, want busybox for a command Debian lacks", h)
	}
	if h := hs["usr/bin/ls"]; h != nil {
		t.Errorf("alpine-like layer shadows Debian's ls: %+v", h)
	}
	if h := hs["etc/os-release"]; h == nil || h.Typeflag != tar.TypeReg {
		t.Errorf("alpine-like /etc/os-release = %+v, want Alpine's file over Debian's link", h)
	}
}
