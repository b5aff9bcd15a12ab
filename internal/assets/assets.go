// Package assets unpacks what monokube carries inside its binary: the helper
// binaries (runc, containerd-shim-runc-v2, CNI plugins, crictl), extracted once per
// content hash under the data dir. The bytes come from package bundled
// (embed/); this package only reads them, so it is tested with archives built
// in the tests.
package assets
