package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/monokube/monokube/internal/datadir"
)

// Default paths and values users see in --help.
const (
	DefaultDataDir    = datadir.DefaultData
	DefaultRunDir     = datadir.DefaultRun
	DefaultConfigFile = datadir.DefaultConfig
	DefaultKubeconfig = "/etc/monokube/kubeconfig.yaml"
)

// ServerInput is the server's settings as the user wrote them, before
// parsing. Each yaml tag is both the config-file key and the long flag name.
type ServerInput struct {
	DataDir                  string   `yaml:"data-dir"`
	RunDir                   string   `yaml:"run-dir"`
	NodeIP                   string   `yaml:"node-ip"`
	NodeName                 string   `yaml:"node-name"`
	BindAddress              string   `yaml:"bind-address"`
	HTTPSListenPort          int      `yaml:"https-listen-port"`
	AdvertiseAddress         string   `yaml:"advertise-address"`
	TLSSAN                   []string `yaml:"tls-san"`
	ClusterCIDR              string   `yaml:"cluster-cidr"`
	ServiceCIDR              string   `yaml:"service-cidr"`
	ClusterDNS               string   `yaml:"cluster-dns"`
	ClusterDomain            string   `yaml:"cluster-domain"`
	WriteKubeconfig          string   `yaml:"write-kubeconfig"`
	WriteKubeconfigMode      string   `yaml:"write-kubeconfig-mode"`
	DisableAgent             bool     `yaml:"disable-agent"`
	FlannelBackend           string   `yaml:"flannel-backend"`
	FlannelIface             string   `yaml:"flannel-iface"`
	Disable                  []string `yaml:"disable"`
	PodSecurity              string   `yaml:"pod-security"`
	TokenTTL                 string   `yaml:"token-ttl"`
	KubeAPIServerArg         []string `yaml:"kube-apiserver-arg"`
	KubeControllerManagerArg []string `yaml:"kube-controller-manager-arg"`
	KubeSchedulerArg         []string `yaml:"kube-scheduler-arg"`
	KubeletArg               []string `yaml:"kubelet-arg"`
	KubeProxyArg             []string `yaml:"kube-proxy-arg"`
	Debug                    bool     `yaml:"debug"`
	Server                   string   `yaml:"server"`
	Token                    string   `yaml:"token"`
	TokenFile                string   `yaml:"token-file"`
	EtcdSnapshotScheduleCron string   `yaml:"etcd-snapshot-schedule-cron"`
	EtcdSnapshotRetention    int      `yaml:"etcd-snapshot-retention"`
	EtcdDisableSnapshots     bool     `yaml:"etcd-disable-snapshots"`
	EtcdSnapshotDir          string   `yaml:"etcd-snapshot-dir"`
	EmbeddedRegistry         bool     `yaml:"embedded-registry"`
	EmbeddedRegistryMirror   []string `yaml:"embedded-registry-mirror"`
}

// AgentInput is `monokube agent`'s settings as the user wrote them; keys
// mean what they mean for the server.
type AgentInput struct {
	Server         string   `yaml:"server"`
	Token          string   `yaml:"token"`
	TokenFile      string   `yaml:"token-file"`
	DataDir        string   `yaml:"data-dir"`
	RunDir         string   `yaml:"run-dir"`
	NodeIP         string   `yaml:"node-ip"`
	NodeName       string   `yaml:"node-name"`
	KubeletArg     []string `yaml:"kubelet-arg"`
	KubeProxyArg   []string `yaml:"kube-proxy-arg"`
	FlannelBackend string   `yaml:"flannel-backend"`
	FlannelIface   string   `yaml:"flannel-iface"`
	Debug          bool     `yaml:"debug"`
}

// DefaultAgentInput returns the agent's defaults.
func DefaultAgentInput() AgentInput {
	return AgentInput{DataDir: DefaultDataDir, RunDir: DefaultRunDir, FlannelBackend: "vxlan"}
}

// DefaultServerInput returns the opinionated defaults. Empty strings mean
// "derive at build time" (node IP, node name, advertise address).
func DefaultServerInput() ServerInput {
	return ServerInput{
		DataDir:             DefaultDataDir,
		RunDir:              DefaultRunDir,
		PodSecurity:         "baseline",
		TokenTTL:            "24h",
		BindAddress:         "0.0.0.0",
		HTTPSListenPort:     6443,
		ClusterCIDR:         "10.42.0.0/16",
		ServiceCIDR:         "10.43.0.0/16",
		ClusterDNS:          "10.43.0.10",
		ClusterDomain:       "cluster.local",
		WriteKubeconfig:     DefaultKubeconfig,
		WriteKubeconfigMode: "0600",
		FlannelBackend:      "vxlan",
		// Every 12 hours, five kept: k3s's defaults.
		EtcdSnapshotScheduleCron: "0 */12 * * *",
		EtcdSnapshotRetention:    5,
	}
}

// LoadFile decodes the YAML config file at path over in. A missing file is
// fine unless explicit (the user named it with --config). Unknown keys and
// malformed YAML are errors that name the file and line.
// in is a *ServerInput or *AgentInput.
func LoadFile(path string, explicit bool, in any) error {
	data, err := datadir.ReadConfig(path, explicit)
	if data == nil || err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(in); err != nil && !errors.Is(err, io.EOF) {
		return newFileError(path, err)
	}
	return nil
}

// FileError is a config file that does not decode. UnknownKeys lists the
// keys the role does not know, so a caller can tell a server's file from an
// agent's without reading the message.
type FileError struct {
	Path        string
	Msg         string // yaml's message in the user's terms
	UnknownKeys []string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("config file %s: %s; keys are the long flag names (see monokube server --help)", e.Path, e.Msg)
}

// newFileError rewrites yaml.v3's errors in the user's terms.
func newFileError(path string, err error) *FileError {
	fe := &FileError{Path: path, Msg: err.Error()}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fe
	}
	// yaml.v3's message for a key that is not in the struct.
	unknownField := regexp.MustCompile(`field (\S+) not found in type \S+`)
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			fe.UnknownKeys = append(fe.UnknownKeys, m[1])
		}
		msgs = append(msgs, unknownField.ReplaceAllString(e, `unknown key "$1"`))
	}
	fe.Msg = strings.Join(msgs, "; ")
	return fe
}

// Dirs are the data and run dir the input holds.
func (in ServerInput) Dirs() datadir.Layout { return datadir.Layout{Data: in.DataDir, Run: in.RunDir} }

// Dirs are the data and run dir the input holds.
func (in AgentInput) Dirs() datadir.Layout { return datadir.Layout{Data: in.DataDir, Run: in.RunDir} }

// FlagSource is the part of a parsed command line Overlay reads. urfave/cli's
// *cli.Context satisfies it; tests use a map.
type FlagSource interface {
	IsSet(name string) bool
	String(name string) string
	Int(name string) int
	Bool(name string) bool
	StringSlice(name string) []string
}

// Overlay sets every field of dst whose key flags reports as given on the
// command line, so flags override the config file.
// dst is a *ServerInput or *AgentInput.
func Overlay(dst any, flags FlagSource) {
	v := reflect.ValueOf(dst).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("yaml")
		if !flags.IsSet(name) {
			continue
		}
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(flags.String(name))
		case reflect.Int:
			f.SetInt(int64(flags.Int(name)))
		case reflect.Bool:
			f.SetBool(flags.Bool(name))
		case reflect.Slice:
			f.Set(reflect.ValueOf(flags.StringSlice(name)))
		default:
			panic("config.Overlay: unsupported field kind " + f.Kind().String())
		}
	}
}

// Marshal renders in (a ServerInput or AgentInput) as a config file holding
// every key whose value differs from defaults, in declaration order.
func Marshal(in, defaults any) ([]byte, error) {
	v, d := reflect.ValueOf(in), reflect.ValueOf(defaults)
	doc := &yaml.Node{Kind: yaml.MappingNode}
	for i := range v.NumField() {
		f, def := v.Field(i), d.Field(i)
		if f.IsZero() && def.IsZero() || reflect.DeepEqual(f.Interface(), def.Interface()) {
			continue
		}
		if f.Kind() == reflect.Slice && f.Len() == 0 && def.Len() == 0 {
			continue
		}
		var val yaml.Node
		if err := val.Encode(f.Interface()); err != nil {
			return nil, fmt.Errorf("encode %s: %w", v.Type().Field(i).Tag.Get("yaml"), err)
		}
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: v.Type().Field(i).Tag.Get("yaml")}, &val)
	}
	if len(doc.Content) == 0 {
		return []byte("# every setting has its default value; keys are the long flag names\n"), nil
	}
	return yaml.Marshal(doc)
}

// NodeFiles are the settings that say where a node keeps its state, read
// from either role's config file for killall and uninstall.
type NodeFiles struct {
	DataDir         string   `yaml:"data-dir"`
	RunDir          string   `yaml:"run-dir"`
	WriteKubeconfig string   `yaml:"write-kubeconfig"`
	KubeletArg      []string `yaml:"kubelet-arg"`
	EtcdSnapshotDir string   `yaml:"etcd-snapshot-dir"`
}

// LoadNodeFiles reads the NodeFiles keys from the config file at path,
// over the defaults; other keys are ignored. A missing file is fine unless
// explicit.
func LoadNodeFiles(path string, explicit bool) (NodeFiles, error) {
	nf := NodeFiles{DataDir: DefaultDataDir, RunDir: DefaultRunDir, WriteKubeconfig: DefaultKubeconfig}
	data, err := datadir.ReadConfig(path, explicit)
	if data == nil || err != nil {
		return nf, err
	}
	if err := yaml.Unmarshal(data, &nf); err != nil {
		return nf, fmt.Errorf("config file %s: %s", path, newFileError(path, err).Msg)
	}
	return nf, nil
}

// CgroupRoot is the kubelet's --cgroup-root among args (key=value), or "/".
func (nf NodeFiles) CgroupRoot() string {
	root := "/"
	for _, a := range nf.KubeletArg {
		if k, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "="); ok && k == "cgroup-root" {
			root = v
		}
	}
	return root
}
