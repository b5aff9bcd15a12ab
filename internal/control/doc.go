// Package control runs the Kubernetes control plane in-process: the
// kube-apiserver, kube-controller-manager and kube-scheduler from their
// upstream cmd/.../app packages, driven by generated command-line arguments.
//
// The upstream cobra commands are not used because they install process-wide
// signal handlers when constructed (kube-apiserver) or exit the process on
// shutdown; instead each component builds its upstream options, parses the
// generated arguments into them and calls the upstream Run with our context.
package control
