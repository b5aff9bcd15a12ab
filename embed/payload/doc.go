// Package payload embeds the real monokube binary, zstd-compressed, for the
// launcher build (`go build -tags launcher ./cmd/monokube`, which `make
// build` runs after building that binary): monokube.zst and
// monokube.sha256, the digest of the uncompressed binary. Without the
// launcher tag it is empty, so the rest of the tree builds and vets before
// the payload exists.
package payload
