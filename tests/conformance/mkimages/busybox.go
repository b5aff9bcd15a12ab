package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"
)

// busyboxApplets lists the applets of the busybox binary at p.
func busyboxApplets(p string) ([]string, error) {
	out, err := exec.Command(p, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list the applets of %s (tests/conformance/busybox.sh builds it): %w", p, err)
	}
	return strings.Fields(string(out)), nil
}

// missingApplets are the applets the Debian tree has no program for, in
// /usr/bin or /usr/sbin.
func (b *builder) missingApplets() ([]string, error) {
	have := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(b.rootfs))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the root filesystem: %w", err)
		}
		if dir, file := path.Split(path.Clean("/" + h.Name)); dir == "/usr/bin/" || dir == "/usr/sbin/" {
			have[file] = true
		}
	}
	var missing []string
	for _, a := range b.applets {
		if !have[a] {
			missing = append(missing, a)
		}
	}
	return missing, nil
}

// alpineLike is the parent of the images whose real base is Alpine: the
// Debian tree with upstream busybox as /bin/sh, and as every command the
// tree lacks, as on Alpine (PATH still finds Debian's programs first for
// the rest: OpenBSD nc, curl, dig, GNU wget), and Alpine's os-release
// (the ImageVolume spec reads it from the kitten image).
func alpineLike(missing []string) imageSpec {
	entries := []entry{
		{path: "/usr/bin/busybox", mode: 0o755, bin: "busybox"},
		{path: "/usr/bin/sh", link: "busybox"},
		{path: "/etc/os-release", mode: 0o644, text: alpineOSRelease},
	}
	return imageSpec{names: []string{alpine}, from: debian, entries: append(entries, appletLinks("/usr/bin", missing, entries)...)}
}

// alpineOSRelease is /etc/os-release of the Alpine release agnhost's base
// had when the pinned Kubernetes was made.
const alpineOSRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.21.3
PRETTY_NAME="Alpine Linux v3.21"
HOME_URL="https://alpinelinux.org/"
`

// appletLinks links every applet into dir, except paths entries has.
func appletLinks(dir string, applets []string, entries []entry) []entry {
	taken := map[string]bool{}
	for _, e := range entries {
		taken[e.path] = true
	}
	var links []entry
	for _, a := range applets {
		p := path.Join(dir, a)
		if a != "busybox" && !taken[p] {
			links = append(links, entry{path: p, link: "busybox"})
		}
	}
	return links
}
