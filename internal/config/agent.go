package config

import (
	"errors"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// Agent is the validated configuration of `monokube agent`. The cluster's
// own settings (CIDRs, DNS) come from the server when the node joins.
type Agent struct {
	Server string // https://HOST:PORT
	Token  string // the join token, parsed by internal/join
	// ConfigFile is the config file the agent was started with: the token
	// in it is dropped once the node holds its own certificate.
	ConfigFile string
	DataDir    string
	RunDir     string
	NodeIP     netip.Addr
	NodeName   string
	Args       ComponentArgs // Kubelet and KubeProxy only
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
		Token:          p.token(in.Token, in.TokenFile),
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

// token returns the join token from --token or --token-file (which keeps
// it out of argv, where any local user can read it).
func (p *parser) token(token, file string) string {
	if file == "" {
		return strings.TrimSpace(token)
	}
	if token != "" {
		p.fail("--token and --token-file are both given: give one")
		return ""
	}
	data, err := os.ReadFile(file)
	if err != nil {
		p.fail("--token-file: %v", err)
		return ""
	}
	return strings.TrimSpace(string(data))
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
