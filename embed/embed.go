// Package bundled will embed the build products the Makefile writes into
// this directory (runc, containerd-shim-runc-v2, CNI plugins, image
// tarballs). The control plane needs none of them, so it embeds nothing yet.
// Import it with an alias: its directory name clashes with the standard
// library's embed package.
package bundled
