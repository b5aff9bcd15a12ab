package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/monokube/monokube/manifests"
)

// Server is the validated, immutable configuration of `monokube server`.
type Server struct {
	DataDir             string
	RunDir              string
	NodeIP              netip.Addr
	NodeName            string
	BindAddress         netip.Addr
	HTTPSPort           int
	AdvertiseAddress    netip.Addr
	TLSSANs             []string // extra names and IPs for the serving certificate
	ClusterCIDR         netip.Prefix
	ServiceCIDR         netip.Prefix
	ClusterDNS          netip.Addr
	ClusterDomain       string
	WriteKubeconfig     string
	WriteKubeconfigMode fs.FileMode
	DisableAgent        bool
	FlannelBackend      string // vxlan or none
	FlannelIface        string
	Disable             []string      // addons left out, from addons.Names
	PodSecurity         string        // Pod Security level enforced by default
	TokenTTL            time.Duration // life of the server's join token; 0 never expires
	// EmbeddedRegistry (--embedded-registry) are the registries whose
	// pulls every node asks the nodes' registry mirrors for first, sorted
	// ("*" for every registry); nil when the mirror is off.
	EmbeddedRegistry []string
	// Join, set with --server, makes a first start join that cluster as
	// another server instead of making a new one.
	Join Join
	// ClusterReset (--cluster-reset, a flag only: it is one start's
	// action, not a setting) makes this server's etcd member the only one
	// of its cluster, after a lost quorum.
	ClusterReset bool
	// Restore (flags only, like ClusterReset) restores the cluster from a
	// snapshot file at this start.
	Restore Restore
	// Snapshots are the scheduled etcd snapshots.
	Snapshots Snapshots
	// Certs is the leaf certificates' lifetime and renewal check.
	Certs Certs
	Args  ComponentArgs
	Debug bool
}

// ComponentArgs are the users' pass-through flags for upstream components.
type ComponentArgs struct {
	APIServer         []Arg
	ControllerManager []Arg
	Scheduler         []Arg
	Kubelet           []Arg
	KubeProxy         []Arg
}

// Arg is one --<component>-arg key=value pair, key without leading dashes.
type Arg struct{ Key, Value string }

// Flag is the command-line form of a: --key=value.
func (a Arg) Flag() string { return "--" + a.Key + "=" + a.Value }

// Host is what BuildServer needs to know about the machine to fill in
// derived defaults. It is an interface so tests can supply a fake host.
type Host interface {
	Hostname() (string, error)
	// DefaultIP returns the address to use when --node-ip is not given.
	DefaultIP() (netip.Addr, error)
}

// BuildServer parses and validates in, filling derived defaults from host.
// All problems are reported together.
func BuildServer(in ServerInput, host Host) (*Server, error) {
	p := &parser{}
	s := &Server{
		DataDir:          p.absPath("data-dir", in.DataDir),
		RunDir:           p.absPath("run-dir", in.RunDir),
		NodeIP:           p.nodeIP(in.NodeIP, host),
		BindAddress:      p.ip("bind-address", in.BindAddress),
		HTTPSPort:        p.port("https-listen-port", in.HTTPSListenPort),
		TLSSANs:          SplitList(in.TLSSAN),
		ClusterCIDR:      p.cidr("cluster-cidr", in.ClusterCIDR),
		ServiceCIDR:      p.cidr("service-cidr", in.ServiceCIDR),
		ClusterDNS:       p.ip("cluster-dns", in.ClusterDNS),
		ClusterDomain:    p.dnsName("cluster-domain", in.ClusterDomain),
		WriteKubeconfig:  p.absPath("write-kubeconfig", in.WriteKubeconfig),
		DisableAgent:     in.DisableAgent,
		FlannelBackend:   p.flannelBackend(in.FlannelBackend),
		FlannelIface:     in.FlannelIface,
		Disable:          p.addons("disable", in.Disable),
		PodSecurity:      p.oneOf("pod-security", in.PodSecurity, "privileged", "baseline", "restricted"),
		TokenTTL:         p.ttl("token-ttl", in.TokenTTL),
		EmbeddedRegistry: p.embeddedRegistry(in),
		Debug:            in.Debug,
	}
	s.NodeName = p.nodeName(in.NodeName, host)
	s.AdvertiseAddress = s.NodeIP
	if in.AdvertiseAddress != "" {
		s.AdvertiseAddress = p.ip("advertise-address", in.AdvertiseAddress)
	}
	s.WriteKubeconfigMode = p.fileMode("write-kubeconfig-mode", in.WriteKubeconfigMode)
	s.Join = p.join(in)
	s.Snapshots = p.snapshots(in, s.DataDir)
	s.Certs = DefaultCerts()
	s.Args = ComponentArgs{
		APIServer:         p.args("kube-apiserver-arg", in.KubeAPIServerArg),
		ControllerManager: p.args("kube-controller-manager-arg", in.KubeControllerManagerArg),
		Scheduler:         p.args("kube-scheduler-arg", in.KubeSchedulerArg),
		Kubelet:           p.args("kubelet-arg", in.KubeletArg),
		KubeProxy:         p.args("kube-proxy-arg", in.KubeProxyArg),
	}
	p.checkServer(s)
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// checkServer validates relations between already-parsed fields.
func (p *parser) checkServer(s *Server) {
	if s.NodeIP.IsValid() && s.NodeIP.IsLoopback() {
		p.fail("--node-ip %s is a loopback address; the apiserver refuses to advertise it: give an address of this machine's network interface", s.NodeIP)
	}
	if s.AdvertiseAddress.IsValid() && s.AdvertiseAddress.IsLoopback() {
		p.fail("--advertise-address %s is a loopback address; the apiserver refuses it: give a routable address", s.AdvertiseAddress)
	}
	if s.ClusterCIDR.IsValid() && s.ServiceCIDR.IsValid() && s.ClusterCIDR.Overlaps(s.ServiceCIDR) {
		p.fail("--cluster-cidr %s overlaps --service-cidr %s: pod and service addresses must not overlap; pick disjoint ranges", s.ClusterCIDR, s.ServiceCIDR)
	}
	if s.ServiceCIDR.IsValid() && s.ServiceCIDR.Addr().Is4() && s.ServiceCIDR.Bits() < 12 {
		p.fail("--service-cidr %s is larger than the apiserver allows (a /12 at most); use a smaller range such as 10.43.0.0/16", s.ServiceCIDR)
	}
	if s.ServiceCIDR.IsValid() && s.ClusterDNS.IsValid() && !s.ServiceCIDR.Contains(s.ClusterDNS) {
		p.fail("--cluster-dns %s is not inside --service-cidr %s: pick an address from the service range", s.ClusterDNS, s.ServiceCIDR)
	}
	if s.ServiceCIDR.IsValid() && s.ClusterDNS == s.ServiceCIDR.Addr().Next() {
		p.fail("--cluster-dns %s is the address of the kubernetes Service: pick another one from --service-cidr %s (the default is .10)", s.ClusterDNS, s.ServiceCIDR)
	}
	if s.ClusterCIDR.IsValid() && s.ClusterCIDR.Addr().Is4() && s.ClusterCIDR.Bits() >= NodeMaskBits {
		p.fail("--cluster-cidr %s holds no more than one node's /%d: give a larger range such as 10.42.0.0/16", s.ClusterCIDR, NodeMaskBits)
	}
	for flag, c := range map[string]netip.Prefix{"--cluster-cidr": s.ClusterCIDR, "--service-cidr": s.ServiceCIDR} {
		if c.IsValid() && !c.Addr().Is4() {
			p.fail("%s %s is not IPv4: monokube's flannel overlay carries IPv4 only; give an IPv4 range", flag, c)
		}
	}
	if err := CheckNodeNetwork(s.NodeIP, s.ClusterCIDR, s.ServiceCIDR); err != nil {
		p.errs = append(p.errs, err)
	}
	p.tlsSANs(s.TLSSANs)
	p.authorization(s.Args.APIServer)
	if s.ClusterDomain != "" && (s.NodeName == s.ClusterDomain || strings.HasSuffix(s.NodeName, "."+s.ClusterDomain)) {
		p.fail("node name %s is under the cluster domain %s, where it would stand for a cluster name in DNS: give --node-name", s.NodeName, s.ClusterDomain)
	}
}

// NodeMaskBits is the size of each node's pod subnet (the
// controller-manager's IPv4 default).
const NodeMaskBits = 24

// CheckNodeNetwork refuses a node IP inside the cluster or service CIDR:
// the node's own traffic would be routed into the cluster (or into the
// blackhole routes that keep cluster traffic on the machine).
func CheckNodeNetwork(nodeIP netip.Addr, clusterCIDR, serviceCIDR netip.Prefix) error {
	for flag, c := range map[string]netip.Prefix{"cluster-cidr": clusterCIDR, "service-cidr": serviceCIDR} {
		if nodeIP.IsValid() && c.IsValid() && c.Contains(nodeIP) {
			return fmt.Errorf("the node IP %s is inside the %s %s: the node would route its own network into the cluster; give the server other --cluster-cidr/--service-cidr ranges, disjoint from the nodes' networks", nodeIP, flag, c)
		}
	}
	return nil
}

// SplitList splits comma-separated entries of a repeatable flag.
func SplitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// ttl parses flag's duration v: 0 means never, anything else at least a
// minute (a token replaced more often than every 30 s is a typo).
func (p *parser) ttl(flag, v string) time.Duration {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		p.fail("--%s %q is not a duration: give one such as 24h, or 0 for never", flag, v)
	case d != 0 && d < time.Minute:
		p.fail("--%s %s is shorter than a minute: give a duration such as 24h, or 0 for never", flag, v)
	}
	return d
}

// oneOf checks that flag's value v is one of allowed.
func (p *parser) oneOf(flag, v string, allowed ...string) string {
	if !slices.Contains(allowed, v) {
		p.fail("--%s %q: give one of %s", flag, v, strings.Join(allowed, ", "))
	}
	return v
}

// authorization refuses an apiserver authorization-mode without Node and
// RBAC: nodes' access, and every grant monokube makes, rest on them.
func (p *parser) authorization(args []Arg) {
	for _, a := range args {
		if a.Key != "authorization-mode" {
			continue
		}
		modes := strings.Split(a.Value, ",")
		if !slices.Contains(modes, "Node") || !slices.Contains(modes, "RBAC") {
			p.fail("--kube-apiserver-arg authorization-mode=%s leaves out Node or RBAC, on which nodes' and monokube's own access rest: keep both (e.g. Node,RBAC,Webhook)", a.Value)
		}
	}
}

// tlsSANs checks that every --tls-san is an IP or a DNS name (a leading
// "*." allowed).
func (p *parser) tlsSANs(sans []string) {
	for _, san := range sans {
		if _, err := netip.ParseAddr(san); err == nil {
			continue
		}
		name := strings.TrimPrefix(san, "*.")
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			p.fail("--tls-san %q is neither an IP address nor a DNS name (%s)", san, strings.Join(errs, "; "))
		}
	}
}

// parser collects every problem instead of stopping at the first.
type parser struct{ errs []error }

func (p *parser) fail(format string, a ...any) { p.errs = append(p.errs, fmt.Errorf(format, a...)) }

func (p *parser) ip(flag, v string) netip.Addr {
	a, err := netip.ParseAddr(v)
	if err != nil {
		p.fail("--%s %q is not an IP address: give one such as 192.168.1.10", flag, v)
	}
	return a
}

func (p *parser) cidr(flag, v string) netip.Prefix {
	pr, err := netip.ParsePrefix(v)
	if err != nil {
		p.fail("--%s %q is not a CIDR: give a network such as 10.42.0.0/16", flag, v)
		return pr
	}
	if pr.Masked() != pr {
		p.fail("--%s %q has host bits set: did you mean %s?", flag, v, pr.Masked())
	}
	return pr
}

func (p *parser) port(flag string, v int) int {
	if v < 1 || v > 65535 {
		p.fail("--%s %d is not a TCP port: give a number from 1 to 65535", flag, v)
	}
	return v
}

func (p *parser) absPath(flag, v string) string {
	if v == "" {
		p.fail("--%s is empty: give a path", flag)
		return v
	}
	a, err := filepath.Abs(v)
	if err != nil {
		p.fail("--%s %q: %v", flag, v, err)
	}
	return a
}

func (p *parser) dnsName(flag, v string) string {
	if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
		p.fail("--%s %q is not a valid DNS name: %s", flag, v, strings.Join(errs, "; "))
	}
	return v
}

func (p *parser) fileMode(flag, v string) fs.FileMode {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || m > 0o777 {
		p.fail("--%s %q is not an octal file mode: give one such as 0600 or 0644", flag, v)
	}
	return fs.FileMode(m)
}

func (p *parser) args(flag string, vs []string) []Arg {
	out := make([]Arg, 0, len(vs))
	for _, v := range vs {
		k, val, ok := strings.Cut(strings.TrimLeft(v, "-"), "=")
		if !ok || k == "" {
			p.fail("--%s %q is not key=value: write it as --%s name=value", flag, v, flag)
			continue
		}
		out = append(out, Arg{Key: k, Value: val})
	}
	return out
}

// flannelBackend checks --flannel-backend.
func (p *parser) flannelBackend(v string) string {
	if v != "vxlan" && v != "none" {
		p.fail("--flannel-backend %q is not a pod network monokube runs: give vxlan, or none to install your own CNI", v)
	}
	return v
}

// addons parses --disable: names from addons.Names, repeated or
// comma-separated, each kept once.
func (p *parser) addons(flag string, vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			switch {
			case name == "" || slices.Contains(out, name):
			case !slices.Contains(manifests.Names(), name):
				p.fail("--%s %q is not an addon: give one or more of %s", flag, name, strings.Join(manifests.Names(), ", "))
			default:
				out = append(out, name)
			}
		}
	}
	return out
}

// embeddedRegistry is the registries the embedded mirror serves: those
// of --embedded-registry-mirror, every one ("*") by default; nil without
// --embedded-registry.
func (p *parser) embeddedRegistry(in ServerInput) []string {
	mirrored := SplitList(in.EmbeddedRegistryMirror)
	if !in.EmbeddedRegistry {
		if len(mirrored) > 0 {
			p.fail("--embedded-registry-mirror %s is given without --embedded-registry: add --embedded-registry to turn the mirror on", strings.Join(mirrored, ","))
		}
		return nil
	}
	if len(mirrored) == 0 {
		return []string{"*"}
	}
	for _, r := range mirrored {
		if err := CheckRegistry(r); err != nil {
			p.fail("--embedded-registry-mirror: %v", err)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(mirrored)))
}

// CheckRegistry refuses what is not a registry host[:port] or "*" (every
// registry): the name of a directory of containerd's registry hosts
// configuration.
func CheckRegistry(r string) error {
	if r == "*" {
		return nil
	}
	if r == "" || r == "." || r == ".." || r == "_default" || strings.ContainsAny(r, "/\\ \t\n\"*,") {
		return fmt.Errorf("registry %q: give a registry host, such as docker.io or registry.example:5000, or \"*\" for every registry", r)
	}
	return nil
}

func (p *parser) nodeIP(v string, host Host) netip.Addr {
	if v != "" {
		return p.ip("node-ip", v)
	}
	a, err := host.DefaultIP()
	if err != nil {
		p.fail("cannot pick a node IP (%v): give one with --node-ip", err)
	}
	return a
}

func (p *parser) nodeName(v string, host Host) string {
	if v == "" {
		h, err := host.Hostname()
		if err != nil {
			p.fail("cannot read the hostname (%v): give --node-name", err)
			return ""
		}
		v = strings.ToLower(h)
	}
	if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
		p.fail("node name %q is not a valid Kubernetes node name (%s): give --node-name", v, strings.Join(errs, "; "))
	}
	return v
}

// Join is the cluster a server joins at its first start: a running
// server's URL and a server token. Zero: a first server, of a new cluster.
type Join struct {
	Server string // https://HOST:PORT
	Token  string // parsed by internal/join
}

// join reads --server, --token and --token-file; without --server none may
// be given.
func (p *parser) join(in ServerInput) Join {
	if in.Server == "" {
		if in.Token != "" || in.TokenFile != "" {
			p.fail("--token is for joining another server's cluster: give --server too, or leave both out to start a new cluster")
		}
		return Join{}
	}
	j := Join{Server: p.serverURL(in.Server), Token: p.token(in.Token, in.TokenFile)}
	if j.Token == "" {
		p.fail("--server needs a server token: on a server of that cluster run `monokube token create --role server` and give it with --token-file or MONOKUBE_TOKEN")
	}
	return j
}
