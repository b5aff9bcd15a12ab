package config

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
)

// Agent is the validated configuration of `monokube agent`. The cluster's
// own settings (CIDRs, DNS) come from the server when the node joins.
type Agent struct {
	Server   string // https://HOST:PORT
	Token    string // the join token, parsed by internal/join
	DataDir  string
	RunDir   string
	NodeIP   netip.Addr
	NodeName string
	Args     ComponentArgs // Kubelet and KubeProxy only
	// FlannelBackend and FlannelIface are as for the server.
	FlannelBackend string
	FlannelIface   string
	Debug          bool
}

// BuildAgent parses and validates in; all problems are reported together.
func BuildAgent(in AgentInput, host Host) (*Agent, error) {
	p := &parser{}
	a := &Agent{
		Server:         p.serverURL(in.Server),
		Token:          strings.TrimSpace(in.Token),
		DataDir:        p.absPath("data-dir", in.DataDir),
		RunDir:         p.absPath("run-dir", in.RunDir),
		NodeIP:         p.nodeIP(in.NodeIP, host),
		Debug:          in.Debug,
		FlannelBackend: p.flannelBackend(in.FlannelBackend),
		FlannelIface:   in.FlannelIface,
		Args: ComponentArgs{
			Kubelet:   p.args("kubelet-arg", in.KubeletArg),
			KubeProxy: p.args("kube-proxy-arg", in.KubeProxyArg),
		},
	}
	a.NodeName = p.nodeName(in.NodeName, host)
	if a.NodeIP.IsValid() && a.NodeIP.IsLoopback() {
		p.fail("--node-ip %s is a loopback address: give an address other nodes reach this machine at", a.NodeIP)
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// serverURL checks --server: an https URL of the server's apiserver.
func (p *parser) serverURL(v string) string {
	if v == "" {
		p.fail("--server is required: give the server's address, such as https://192.168.1.10:6443")
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		p.fail("--server %q is not an https URL of a server: give one such as https://192.168.1.10:6443", v)
		return ""
	}
	return "https://" + u.Host
}
