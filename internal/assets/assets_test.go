package assets

import (
	"bytes"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// imageTarball writes an empty image as a docker-archive under ref.
func imageTarball(t *testing.T, ref name.Reference) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tarball.Write(ref, empty.Image, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImageName(t *testing.T) {
	tag, err := name.NewTag("monokube.local/pause:3.10", name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ImageName(imageTarball(t, tag))
	if err != nil {
		t.Fatal(err)
	}
	if got != "monokube.local/pause:3.10" {
		t.Errorf("ImageName = %q, want monokube.local/pause:3.10", got)
	}
}

func TestImageNameErrors(t *testing.T) {
	digest, err := name.NewDigest("monokube.local/pause@sha256:" + string(bytes.Repeat([]byte("0"), 64)))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]byte{
		"not a tar": []byte("garbage"),
		"no tags":   imageTarball(t, digest),
	}
	for name, archive := range tests {
		t.Run(name, func(t *testing.T) {
			if got, err := ImageName(archive); err == nil {
				t.Errorf("ImageName = %q, want an error", got)
			}
		})
	}
}
