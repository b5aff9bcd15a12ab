package cli

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/monokube/monokube/internal/config"
)

// Every config-file key is a flag of its role and every flag but --config
// a key, so flags and file stay one interface.
func TestFlagsAndConfigKeysMatch(t *testing.T) {
	for _, tc := range []struct {
		role  string
		flags []cli.Flag
		input reflect.Type
	}{
		{"server", serverFlags(config.DefaultServerInput()), reflect.TypeFor[config.ServerInput]()},
		{"agent", agentFlags(config.DefaultAgentInput()), reflect.TypeFor[config.AgentInput]()},
	} {
		t.Run(tc.role, func(t *testing.T) {
			var flags, keys []string
			for _, f := range tc.flags {
				flags = append(flags, f.Names()[0])
			}
			for i := range tc.input.NumField() {
				keys = append(keys, tc.input.Field(i).Tag.Get("yaml"))
			}
			for _, k := range keys {
				if !slices.Contains(flags, k) {
					t.Errorf("config key %q has no --%s flag", k, k)
				}
			}
			for _, f := range flags {
				if f != "config" && !slices.Contains(keys, f) {
					t.Errorf("flag --%s is not a config key", f)
				}
			}
		})
	}
}

// Flags override the config file, which overrides the defaults.
func TestServerConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	yaml := "node-ip: 10.0.0.5\nnode-name: from-file\ncluster-domain: file.local\ntls-san: [a.example]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var got *config.Server
	app := &cli.App{Commands: []*cli.Command{{
		Name: "server", Flags: serverFlags(config.DefaultServerInput()),
		Action: func(c *cli.Context) (err error) {
			got, err = serverConfig(c)
			return err
		},
	}}}
	args := []string{"monokube", "server", "--config", file, "--data-dir", dir, "--node-name", "from-flag", "--tls-san", "b.example"}
	if err := app.Run(args); err != nil {
		t.Fatal(err)
	}
	if got.NodeName != "from-flag" {
		t.Errorf("node name = %q, want the flag's value", got.NodeName)
	}
	if got.ClusterDomain != "file.local" || got.NodeIP.String() != "10.0.0.5" {
		t.Errorf("file values lost: domain %q, node IP %s", got.ClusterDomain, got.NodeIP)
	}
	if !slices.Equal(got.TLSSANs, []string{"b.example"}) {
		t.Errorf("tls-san = %v, want the flag's list to replace the file's", got.TLSSANs)
	}
	if got.HTTPSPort != 6443 || got.ServiceCIDR.String() != "10.43.0.0/16" {
		t.Errorf("defaults lost: port %d, service CIDR %s", got.HTTPSPort, got.ServiceCIDR)
	}
}

func TestEnvName(t *testing.T) {
	if got := env("write-kubeconfig-mode"); got[0] != "MONOKUBE_WRITE_KUBECONFIG_MODE" {
		t.Errorf("env = %v", got)
	}
}

// Pass-through values keep their commas; --tls-san and --disable still
// take comma-separated lists.
func TestPassThroughKeepsCommas(t *testing.T) {
	var got *config.Server
	app := newApp(io.Discard, io.Discard)
	for _, c := range app.Commands {
		if c.Name == "server" {
			c.Action = func(c *cli.Context) (err error) {
				got, err = serverConfig(c)
				return err
			}
		}
	}
	conf := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"monokube", "server", "--config", conf, "--data-dir", t.TempDir(), "--node-ip", "10.0.0.5", "--node-name", "n1",
		"--kube-apiserver-arg", "enable-admission-plugins=NodeRestriction,PodSecurity", "--tls-san", "a.example,b.example", "--disable", "coredns,metrics-server"}
	if err := app.Run(args); err != nil {
		t.Fatal(err)
	}
	if len(got.Args.APIServer) != 1 || got.Args.APIServer[0].Value != "NodeRestriction,PodSecurity" {
		t.Errorf("kube-apiserver-arg = %+v, want one pair with the whole list", got.Args.APIServer)
	}
	if !slices.Equal(got.TLSSANs, []string{"a.example", "b.example"}) || !slices.Equal(got.Disable, []string{"coredns", "metrics-server"}) {
		t.Errorf("tls-san %v, disable %v: want the lists split", got.TLSSANs, got.Disable)
	}
}
