package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeHost answers Hostname and DefaultIP with fixed values.
type fakeHost struct {
	name    string
	nameErr error
	ip      netip.Addr
	ipErr   error
}

func (h fakeHost) Hostname() (string, error)      { return h.name, h.nameErr }
func (h fakeHost) DefaultIP() (netip.Addr, error) { return h.ip, h.ipErr }

var testHost = fakeHost{name: "Node1", ip: netip.MustParseAddr("192.168.1.10")} //nolint:gochecknoglobals // test fixture

func TestBuildServerDefaults(t *testing.T) {
	got, err := BuildServer(DefaultServerInput(), testHost)
	if err != nil {
		t.Fatal(err)
	}
	want := &Server{
		DataDir:             DefaultDataDir,
		RunDir:              DefaultRunDir,
		NodeIP:              netip.MustParseAddr("192.168.1.10"),
		NodeName:            "node1",
		BindAddress:         netip.MustParseAddr("0.0.0.0"),
		HTTPSPort:           6443,
		AdvertiseAddress:    netip.MustParseAddr("192.168.1.10"),
		ClusterCIDR:         netip.MustParsePrefix("10.42.0.0/16"),
		ServiceCIDR:         netip.MustParsePrefix("10.43.0.0/16"),
		ClusterDNS:          netip.MustParseAddr("10.43.0.10"),
		ClusterDomain:       "cluster.local",
		WriteKubeconfig:     DefaultKubeconfig,
		WriteKubeconfigMode: 0o600,
		FlannelBackend:      "vxlan",
		PodSecurity:         "baseline",
		TokenTTL:            24 * time.Hour,
		Snapshots:           Snapshots{Schedule: "0 */12 * * *", Retention: 5, Dir: "/var/lib/monokube/server/db/snapshots"},
		Certs:               DefaultCerts(),
		Args:                ComponentArgs{APIServer: []Arg{}, ControllerManager: []Arg{}, Scheduler: []Arg{}, Kubelet: []Arg{}, KubeProxy: []Arg{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("BuildServer(defaults) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestBuildServerExplicit(t *testing.T) {
	in := DefaultServerInput()
	in.NodeIP = "10.0.0.5"
	in.NodeName = "worker-a"
	in.AdvertiseAddress = "10.0.0.6"
	in.WriteKubeconfigMode = "0644"
	in.KubeAPIServerArg = []string{"--v=2", "feature-gates=A=true", "empty="}
	got, err := BuildServer(in, fakeHost{nameErr: errors.New("no hostname"), ipErr: errors.New("no ip")})
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeIP != netip.MustParseAddr("10.0.0.5") || got.AdvertiseAddress != netip.MustParseAddr("10.0.0.6") {
		t.Errorf("node IP %s, advertise %s; want 10.0.0.5, 10.0.0.6", got.NodeIP, got.AdvertiseAddress)
	}
	if got.NodeName != "worker-a" {
		t.Errorf("node name %q, want worker-a", got.NodeName)
	}
	if got.WriteKubeconfigMode != 0o644 {
		t.Errorf("mode %o, want 644", got.WriteKubeconfigMode)
	}
	wantArgs := []Arg{{"v", "2"}, {"feature-gates", "A=true"}, {"empty", ""}}
	if !reflect.DeepEqual(got.Args.APIServer, wantArgs) {
		t.Errorf("apiserver args %+v, want %+v", got.Args.APIServer, wantArgs)
	}
}

func TestBuildServerDisable(t *testing.T) {
	in := DefaultServerInput()
	in.NodeIP, in.NodeName = "10.0.0.5", "n"
	in.Disable = []string{"metrics-server, coredns", "coredns", ""}
	got, err := BuildServer(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"metrics-server", "coredns"}; !reflect.DeepEqual(got.Disable, want) {
		t.Errorf("Disable = %q, want %q", got.Disable, want)
	}
}

func TestBuildServerEmbeddedRegistry(t *testing.T) {
	for _, tc := range []struct {
		on     bool
		mirror []string
		want   []string
	}{
		{false, nil, nil},
		{true, nil, []string{"*"}},
		{true, []string{"registry.example:5000, docker.io", "docker.io"}, []string{"docker.io", "registry.example:5000"}},
	} {
		in := DefaultServerInput()
		in.NodeIP, in.NodeName = "10.0.0.5", "n"
		in.EmbeddedRegistry, in.EmbeddedRegistryMirror = tc.on, tc.mirror
		got, err := BuildServer(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.EmbeddedRegistry, tc.want) {
			t.Errorf("on %v, mirror %q: EmbeddedRegistry = %q, want %q", tc.on, tc.mirror, got.EmbeddedRegistry, tc.want)
		}
	}
}

func TestBuildServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*ServerInput)
		host   Host
		want   string // part of the message, naming the flag
	}{
		{"invalid node IP", func(in *ServerInput) { in.NodeIP = "10.0.0.300" }, nil, "--node-ip"},
		{"bad snapshot schedule", func(in *ServerInput) { in.EtcdSnapshotScheduleCron = "twice a day" }, nil, "--etcd-snapshot-schedule-cron"},
		{"no snapshot kept", func(in *ServerInput) { in.EtcdSnapshotRetention = 0 }, nil, "--etcd-snapshot-retention 0"},
		{"invalid bind address", func(in *ServerInput) { in.BindAddress = "any" }, nil, "--bind-address"},
		{"invalid advertise address", func(in *ServerInput) { in.AdvertiseAddress = "host.example" }, nil, "--advertise-address"},
		{"invalid CIDR", func(in *ServerInput) { in.ClusterCIDR = "10.42.0.0" }, nil, "--cluster-cidr"},
		{"CIDR with host bits", func(in *ServerInput) { in.ServiceCIDR = "10.43.0.1/16" }, nil, "--service-cidr"},
		{
			"overlapping CIDRs",
			func(in *ServerInput) { in.ClusterCIDR = "10.0.0.0/8" },
			nil, "--cluster-cidr 10.0.0.0/8 overlaps --service-cidr",
		},
		{"service CIDR too large", func(in *ServerInput) { in.ServiceCIDR = "11.0.0.0/8"; in.ClusterDNS = "11.0.0.10" }, nil, "--service-cidr"},
		{"cluster DNS outside service CIDR", func(in *ServerInput) { in.ClusterDNS = "10.42.0.10" }, nil, "--cluster-dns"},
		{"loopback node IP", func(in *ServerInput) { in.NodeIP = "127.0.0.1" }, nil, "--node-ip"},
		{"loopback advertise address", func(in *ServerInput) { in.AdvertiseAddress = "::1" }, nil, "--advertise-address"},
		{"port 0", func(in *ServerInput) { in.HTTPSListenPort = 0 }, nil, "--https-listen-port"},
		{"port 70000", func(in *ServerInput) { in.HTTPSListenPort = 70000 }, nil, "--https-listen-port"},
		{"bad file mode", func(in *ServerInput) { in.WriteKubeconfigMode = "999" }, nil, "--write-kubeconfig-mode"},
		{"unknown flannel backend", func(in *ServerInput) { in.FlannelBackend = "wireguard" }, nil, `--flannel-backend "wireguard"`},
		{"unknown addon", func(in *ServerInput) { in.Disable = []string{"coredns,traefik"} }, nil, `--disable "traefik" is not an addon: give one or more of coredns, local-storage, metrics-server`},
		{"mirror without the mirror", func(in *ServerInput) { in.EmbeddedRegistryMirror = []string{"docker.io"} }, nil, "--embedded-registry-mirror docker.io is given without --embedded-registry"},
		{"mirror of a path", func(in *ServerInput) {
			in.EmbeddedRegistry, in.EmbeddedRegistryMirror = true, []string{"docker.io/library"}
		}, nil, `--embedded-registry-mirror: registry "docker.io/library"`},
		{"file mode too large", func(in *ServerInput) { in.WriteKubeconfigMode = "1777" }, nil, "--write-kubeconfig-mode"},
		{"apiserver arg without =", func(in *ServerInput) { in.KubeAPIServerArg = []string{"v2"} }, nil, "--kube-apiserver-arg"},
		{"scheduler arg without key", func(in *ServerInput) { in.KubeSchedulerArg = []string{"--=1"} }, nil, "--kube-scheduler-arg"},
		{"invalid cluster domain", func(in *ServerInput) { in.ClusterDomain = "Cluster_Local" }, nil, "--cluster-domain"},
		{"empty data dir", func(in *ServerInput) { in.DataDir = "" }, nil, "--data-dir"},
		{"invalid node name", func(in *ServerInput) { in.NodeName = "node_1" }, nil, "--node-name"},
		{"no default IP", func(*ServerInput) {}, fakeHost{name: "node1", ipErr: errors.New("no route")}, "--node-ip"},
		{"no hostname", func(*ServerInput) {}, fakeHost{nameErr: errors.New("uname"), ip: testHost.ip}, "--node-name"},
		{"hostname not a node name", func(*ServerInput) {}, fakeHost{name: "my_host", ip: testHost.ip}, "--node-name"},
		{"cluster DNS is the kubernetes Service", func(in *ServerInput) { in.ClusterDNS = "10.43.0.1" }, nil, "--cluster-dns 10.43.0.1 is the address of the kubernetes Service"},
		{"cluster CIDR of one node", func(in *ServerInput) { in.ClusterCIDR = "10.42.0.0/24" }, nil, "--cluster-cidr 10.42.0.0/24 holds no more than one node"},
		{"IPv6 cluster CIDR", func(in *ServerInput) { in.ClusterCIDR = "fd42::/56" }, nil, "--cluster-cidr fd42::/56 is not IPv4"},
		{"join without a token", func(in *ServerInput) { in.Server = "https://10.0.0.1:6443" }, nil, "--server needs a server token"},
		{"token without a server", func(in *ServerInput) { in.Token = "mk1::x" }, nil, "--token is for joining"},
		{"join server not https", func(in *ServerInput) { in.Server, in.Token = "10.0.0.1:6443", "mk1::x" }, nil, "--server"},
		{"node IP in the cluster CIDR", func(in *ServerInput) { in.NodeIP = "10.42.7.1" }, nil, "node IP 10.42.7.1 is inside the cluster-cidr"},
		{"node IP in the service CIDR", func(in *ServerInput) { in.NodeIP = "10.43.0.99" }, nil, "node IP 10.43.0.99 is inside the service-cidr"},
		{"TLS SAN with a space", func(in *ServerInput) { in.TLSSAN = []string{"api example.com"} }, nil, `--tls-san "api example.com"`},
		{"unknown Pod Security level", func(in *ServerInput) { in.PodSecurity = "strict" }, nil, `--pod-security "strict"`},
		{"token TTL not a duration", func(in *ServerInput) { in.TokenTTL = "1 day" }, nil, `--token-ttl "1 day" is not a duration`},
		{"token TTL of seconds", func(in *ServerInput) { in.TokenTTL = "30s" }, nil, "--token-ttl 30s is shorter than a minute"},
		{"negative token TTL", func(in *ServerInput) { in.TokenTTL = "-1h" }, nil, "--token-ttl -1h is shorter than a minute"},
		{"authorization without Node", func(in *ServerInput) { in.KubeAPIServerArg = []string{"authorization-mode=RBAC"} }, nil, "leaves out Node or RBAC"},
		{"node name under the cluster domain", func(in *ServerInput) { in.NodeName = "kubernetes.default.svc.cluster.local" }, nil, "under the cluster domain cluster.local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := DefaultServerInput()
			tc.mutate(&in)
			host := tc.host
			if host == nil {
				host = testHost
			}
			s, err := BuildServer(in, host)
			if err == nil {
				t.Fatalf("BuildServer succeeded (%+v), want an error mentioning %q", s, tc.want)
			}
			if s != nil {
				t.Errorf("BuildServer returned a Server with the error %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestBuildServerReportsAllErrors(t *testing.T) {
	in := DefaultServerInput()
	in.NodeIP = "nope"
	in.HTTPSListenPort = -1
	in.ClusterDomain = "bad_domain"
	in.KubeControllerManagerArg = []string{"novalue"}
	_, err := BuildServer(in, testHost)
	if err == nil {
		t.Fatal("BuildServer succeeded, want errors")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 4 {
		t.Errorf("want 4 joined errors, got %v", err)
	}
	for _, flag := range []string{"--node-ip", "--https-listen-port", "--cluster-domain", "--kube-controller-manager-arg"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error %q does not mention %s", err, flag)
		}
	}
}

func TestCertsFromEnv(t *testing.T) {
	if c, err := CertsFromEnv(""); err != nil || c != DefaultCerts() {
		t.Errorf("unset: %+v, %v; want the defaults", c, err)
	}
	c, err := CertsFromEnv("8m")
	if err != nil || c.Lifetime.Validity != 8*time.Minute || c.Lifetime.RenewBefore != 6*time.Minute || c.CheckEvery != 30*time.Second {
		t.Errorf("8m: %+v, %v", c, err)
	}
	for _, bad := range []string{"10s", "7m", "a year"} {
		if _, err := CertsFromEnv(bad); err == nil || !strings.Contains(err.Error(), TestCertLifetimeEnv) {
			t.Errorf("%q: err %v, want one naming %s", bad, err, TestCertLifetimeEnv)
		}
	}
}
