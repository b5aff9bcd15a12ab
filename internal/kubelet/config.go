// Package kubelet runs the upstream kubelet in-process with a
// KubeletConfiguration rendered from plain data.
package kubelet

import (
	"fmt"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/monokube/monokube/internal/config"
	mklog "github.com/monokube/monokube/internal/log"
	"github.com/monokube/monokube/internal/pki"
)

// PodPidsLimit bounds the processes of one pod, so a fork bomb cannot take
// the node's (and on a server, the control plane's) PIDs; --kubelet-arg
// pod-max-pids changes it.
const PodPidsLimit = 4096

// Ports: the kubelet's API on the node IP, its health endpoint on loopback.
const (
	Port        = 10250
	HealthzPort = 10248
)

// Config is what monokube decides about the kubelet.
type Config struct {
	NodeName string
	NodeIP   netip.Addr
	RootDir  string

	Kubeconfig   string // client credentials for system:node:<name>
	ClientCAFile string // authenticates the apiserver and other clients
	TLSCertFile  string // serving certificate
	TLSKeyFile   string
	// TLSBootstrap, on a joined node: the kubelet requests its own client
	// and serving certificates (certificates in CertDir, rotated) instead
	// of using TLSCertFile and static credentials in Kubeconfig.
	TLSBootstrap bool
	// BootstrapKubeconfig holds the join token the kubelet makes its first
	// request with; empty once it holds its client certificate.
	BootstrapKubeconfig string

	RuntimeEndpoint string // containerd's socket path
	ClusterDNS      netip.Addr
	ClusterDomain   string
	ResolvConf      string

	CgroupDriver string // cgroupfs or systemd
	CgroupV1     bool   // the host has cgroup v1: allow it
	// NoOOMScoreAdj is set where the kubelet cannot lower oom_score_adj
	// (CAP_SYS_RESOURCE missing): it leaves its own at 0.
	NoOOMScoreAdj bool
	SwapOn        bool // run with swap on instead of refusing to start
	// ProtectKernelDefaults: the host's kernel tunables already hold what
	// the kubelet needs, so it checks them instead of writing them.
	ProtectKernelDefaults bool

	Debug bool
	Args  []config.Arg // --kubelet-arg, applied as flags over the file
}

// Render returns the KubeletConfiguration YAML for c.
func Render(c Config) ([]byte, error) {
	kc := kubeletv1beta1.KubeletConfiguration{
		TypeMeta:           metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		Address:            c.NodeIP.String(),
		ReadOnlyPort:       0,
		TLSCertFile:        c.TLSCertFile,
		TLSPrivateKeyFile:  c.TLSKeyFile,
		HealthzBindAddress: "127.0.0.1",
		HealthzPort:        ptr.To[int32](HealthzPort),
		Authentication: kubeletv1beta1.KubeletAuthentication{
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(false)},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr.To(true), CacheTTL: metav1.Duration{Duration: 2 * time.Minute}},
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: c.ClientCAFile},
		},
		Authorization: kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook,
			Webhook: kubeletv1beta1.KubeletWebhookAuthorization{
				CacheAuthorizedTTL: metav1.Duration{Duration: 5 * time.Minute}, CacheUnauthorizedTTL: metav1.Duration{Duration: 30 * time.Second},
			}},
		ClusterDNS:               []string{c.ClusterDNS.String()},
		ClusterDomain:            c.ClusterDomain,
		ResolverConfig:           ptr.To(c.ResolvConf),
		ContainerRuntimeEndpoint: "unix://" + c.RuntimeEndpoint,
		CgroupDriver:             c.CgroupDriver,
		FailCgroupV1:             ptr.To(!c.CgroupV1),
		FailSwapOn:               ptr.To(!c.SwapOn),
		StaticPodPath:            "",
		SerializeImagePulls:      ptr.To(false),
		RuntimeRequestTimeout:    metav1.Duration{Duration: 2 * time.Minute},
		// Every threshold listed (upstream drops the unlisted ones), inode
		// ones included: a pod making millions of files is evicted before
		// the node's filesystem, which on a server holds etcd, runs out.
		EvictionHard: map[string]string{
			"memory.available": "100Mi", "nodefs.available": "10%", "imagefs.available": "10%",
			"nodefs.inodesFree": "5%", "imagefs.inodesFree": "5%",
		},
		SeccompDefault:  ptr.To(true),
		PodPidsLimit:    ptr.To[int64](PodPidsLimit),
		TLSMinVersion:   pki.TLSMinVersion,
		TLSCipherSuites: pki.CipherSuites(),
		// Upstream's defaults, written out so the file says what runs.
		StreamingConnectionIdleTimeout: metav1.Duration{Duration: 4 * time.Hour},
		ProtectKernelDefaults:          c.ProtectKernelDefaults,
		// Embedded images are pinned; users' imported ones should not
		// vanish on a laptop with a nearly full disk either.
		ImageGCHighThresholdPercent: ptr.To[int32](95),
		ImageGCLowThresholdPercent:  ptr.To[int32](90),
	}
	kc.Logging.Format = mklog.ComponentFormat
	if c.Debug {
		kc.Logging.Verbosity = 2
	}
	if c.NoOOMScoreAdj {
		kc.OOMScoreAdj = ptr.To[int32](0)
	}
	if c.SwapOn {
		kc.MemorySwap.SwapBehavior = "NoSwap"
	}
	if c.TLSBootstrap {
		kc.RotateCertificates = true
		kc.ServerTLSBootstrap = true
	}
	out, err := yaml.Marshal(kc)
	if err != nil {
		return nil, fmt.Errorf("render kubelet config: %w", err)
	}
	return out, nil
}

// CertDir is where a bootstrapped kubelet keeps its certificates.
func CertDir(rootDir string) string { return rootDir + "/pki" }

// ClientCertFile is the bootstrapped kubelet's current client certificate
// and key, which its kubeconfig names.
func ClientCertFile(rootDir string) string { return CertDir(rootDir) + "/kubelet-client-current.pem" }

// ServingCertFile is the bootstrapped kubelet's current serving
// certificate and key, once the cluster has signed it.
func ServingCertFile(rootDir string) string { return CertDir(rootDir) + "/kubelet-server-current.pem" }

// Args are the kubelet's command-line flags: the config file, identity and
// paths, then the user's --kubelet-arg pairs, which win.
func Args(c Config, configFile string) []string {
	args := []string{
		"--config=" + configFile,
		"--kubeconfig=" + c.Kubeconfig,
		"--hostname-override=" + c.NodeName,
		"--node-ip=" + c.NodeIP.String(),
		"--root-dir=" + c.RootDir,
		"--cert-dir=" + CertDir(c.RootDir),
	}
	if c.BootstrapKubeconfig != "" {
		args = append(args, "--bootstrap-kubeconfig="+c.BootstrapKubeconfig)
	}
	for _, a := range c.Args {
		args = append(args, a.Flag())
	}
	return args
}
