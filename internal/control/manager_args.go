package control

import (
	"maps"
	"strconv"

	"github.com/monokube/monokube/internal/config"
)

// ControllerManagerArgs is the kube-controller-manager command line.
//
// Leader election is off: a single server has nothing to elect, and with it
// on, upstream exits the whole process when its context ends instead of
// returning, which would cut monokube's ordered shutdown short.
//
// The root CA publisher (kube-root-ca.crt in every namespace) is monokube's
// own (server.rootCAPublisher): upstream's reads --root-ca-file once, and
// pods must follow a server CA rotation.
func ControllerManagerArgs(cfg *config.Server, c Creds) []string {
	defaults := Flags{
		"authentication-kubeconfig":                       c.CMKubeconfig,
		"authorization-kubeconfig":                        c.CMKubeconfig,
		"bind-address":                                    "127.0.0.1",
		"tls-cert-file":                                   c.CMServing.Cert(),
		"tls-private-key-file":                            c.CMServing.Key(),
		"cluster-signing-kube-apiserver-client-cert-file": c.ClientSigner,
		"cluster-signing-kube-apiserver-client-key-file":  c.ClientCA.Key(),
		"cluster-signing-kubelet-client-cert-file":        c.ClientSigner,
		"cluster-signing-kubelet-client-key-file":         c.ClientCA.Key(),
		"cluster-signing-kubelet-serving-cert-file":       c.KubeletServingSigner,
		"cluster-signing-kubelet-serving-key-file":        c.KubeletServingCA.Key(),
		"root-ca-file":                                    c.ServerCA.Cert(),
		"service-account-private-key-file":                c.ServiceKey,
		"use-service-account-credentials":                 "true",
		"allocate-node-cidrs":                             "true",
		"cluster-cidr":                                    cfg.ClusterCIDR.String(),
		"service-cluster-ip-range":                        cfg.ServiceCIDR.String(),
		"controllers":                                     "*,bootstrapsigner,tokencleaner,-root-ca-cert-publisher",
		"configure-cloud-routes":                          "false",
		"leader-elect":                                    "false",
		"profiling":                                       "false",
	}
	maps.Copy(defaults, tlsFlags())
	forced := Flags{
		"kubeconfig":  c.CMKubeconfig,
		"secure-port": strconv.Itoa(CMPort),
	}
	return Merge(defaults, cfg.Args.ControllerManager, forced)
}

// SchedulerArgs is the kube-scheduler command line. Leader election is off
// for the same reason as the controller-manager's.
func SchedulerArgs(cfg *config.Server, c Creds) []string {
	defaults := Flags{
		"authentication-kubeconfig": c.SchedulerKubeconfig,
		"authorization-kubeconfig":  c.SchedulerKubeconfig,
		"bind-address":              "127.0.0.1",
		"tls-cert-file":             c.SchedulerServing.Cert(),
		"tls-private-key-file":      c.SchedulerServing.Key(),
		"leader-elect":              "false",
		"profiling":                 "false",
	}
	maps.Copy(defaults, tlsFlags())
	forced := Flags{
		"kubeconfig":  c.SchedulerKubeconfig,
		"secure-port": strconv.Itoa(SchedulerPort),
	}
	return Merge(defaults, cfg.Args.Scheduler, forced)
}
