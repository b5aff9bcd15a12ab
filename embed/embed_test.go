package bundled

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestReleaseKeepsData: Release drops pages of the binary's own data, which
// a later read faults back in from the file, unchanged (on anonymous memory
// the same call would zero them).
func TestReleaseKeepsData(t *testing.T) {
	imgs, err := Images()
	if err != nil {
		t.Fatal(err)
	}
	blobs := []Blob{BinTar()}
	for _, img := range imgs {
		blobs = append(blobs, img.Archive)
	}
	for _, b := range blobs {
		b.Release()
		sum := sha256.Sum256(b.Data)
		if got := hex.EncodeToString(sum[:]); got != b.SHA256 {
			t.Errorf("after Release: digest %s, recorded %s", got, b.SHA256)
		}
	}
}
