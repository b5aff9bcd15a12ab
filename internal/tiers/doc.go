// Package tiers names the layers monokube's packages sit in and, in its
// test, holds every import to them: a package imports only from its own
// tier or the tiers below it.
//
//	roles            cli, server, agent, launcher: what a command runs
//	node operations  install, killall: act on a node from outside its life
//	components       what a role runs (etcd, control, kubelet, …) and the
//	                 node's component sets (node, join, upgrade, …) and
//	                 the cluster's identity
//	machinery        what components are built from (lifecycle, config,
//	                 datadir, pki, …)
//
// The table in tiers_test.go is the source; README's Layout section shows
// it.
package tiers
