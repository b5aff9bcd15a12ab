package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	for _, tc := range []struct {
		name     string
		explicit bool
		wantErr  bool
	}{
		{"default", false, false},
		{"explicit", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := DefaultServerInput()
			err := LoadFile(path, tc.explicit, &in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("LoadFile(explicit=%v) error = %v, want error: %v", tc.explicit, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if !reflect.DeepEqual(in, DefaultServerInput()) {
				t.Errorf("input changed: %+v", in)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    []string
	}{
		{"malformed", "node-ip: 10.0.0.1\n\tdata-dir: /x\n", []string{"line 2"}},
		{"unknown key", "node-ip: 10.0.0.1\nfoo: bar\n", []string{"line 2", `unknown key "foo"`}},
		{"wrong type", "https-listen-port: many\n", []string{"line 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.content)
			in := DefaultServerInput()
			err := LoadFile(path, true, &in)
			if err == nil {
				t.Fatal("LoadFile succeeded, want an error")
			}
			for _, want := range append(tc.want, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadFileUnknownKeys(t *testing.T) {
	path := writeConfig(t, "servers: https://s:6443\nnode-ip: 10.0.0.1\ntokn: x\n")
	in := DefaultServerInput()
	var fe *FileError
	if err := LoadFile(path, true, &in); !errors.As(err, &fe) {
		t.Fatalf("LoadFile = %v, want a *FileError", err)
	}
	if want := []string{"servers", "tokn"}; !reflect.DeepEqual(fe.UnknownKeys, want) {
		t.Errorf("UnknownKeys = %q, want %q", fe.UnknownKeys, want)
	}
}

func TestLoadFileValid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    func(*ServerInput)
	}{
		{"empty", "", func(*ServerInput) {}},
		{"comments only", "# nothing here\n", func(*ServerInput) {}},
		{
			"fields",
			"node-ip: 10.0.0.5\nhttps-listen-port: 7443\ntls-san: [api.example.com, 10.0.0.6]\ndisable-agent: true\nkube-apiserver-arg:\n  - v=2\n",
			func(in *ServerInput) {
				in.NodeIP = "10.0.0.5"
				in.HTTPSListenPort = 7443
				in.TLSSAN = []string{"api.example.com", "10.0.0.6"}
				in.DisableAgent = true
				in.KubeAPIServerArg = []string{"v=2"}
			},
		},
		{"unquoted octal mode", "write-kubeconfig-mode: 0644\n", func(in *ServerInput) { in.WriteKubeconfigMode = "0644" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DefaultServerInput()
			if err := LoadFile(writeConfig(t, tc.content), true, &got); err != nil {
				t.Fatal(err)
			}
			want := DefaultServerInput()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadFile gave\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// fakeFlags is a FlagSource backed by a map of the flags the user set.
type fakeFlags map[string]any

func (f fakeFlags) IsSet(name string) bool { _, ok := f[name]; return ok }

func (f fakeFlags) String(name string) string { s, _ := f[name].(string); return s }

func (f fakeFlags) Int(name string) int { i, _ := f[name].(int); return i }

func (f fakeFlags) Bool(name string) bool { b, _ := f[name].(bool); return b }

func (f fakeFlags) StringSlice(name string) []string { s, _ := f[name].([]string); return s }

func TestOverlay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags fakeFlags
		want  func(*ServerInput)
	}{
		{"nothing set", fakeFlags{}, func(*ServerInput) {}},
		{"string", fakeFlags{"node-ip": "10.0.0.9"}, func(in *ServerInput) { in.NodeIP = "10.0.0.9" }},
		{"string set to empty", fakeFlags{"bind-address": ""}, func(in *ServerInput) { in.BindAddress = "" }},
		{"int", fakeFlags{"https-listen-port": 8443}, func(in *ServerInput) { in.HTTPSListenPort = 8443 }},
		{"bool", fakeFlags{"debug": true}, func(in *ServerInput) { in.Debug = true }},
		{"bool set to false", fakeFlags{"disable-agent": false}, func(in *ServerInput) { in.DisableAgent = false }},
		{"slice", fakeFlags{"tls-san": []string{"x.example"}}, func(in *ServerInput) { in.TLSSAN = []string{"x.example"} }},
		{
			"several",
			fakeFlags{"cluster-cidr": "10.50.0.0/16", "kube-scheduler-arg": []string{"v=4"}},
			func(in *ServerInput) {
				in.ClusterCIDR = "10.50.0.0/16"
				in.KubeSchedulerArg = []string{"v=4"}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The "file" values differ from the defaults, so a flag that is
			// not set must leave them alone.
			fromFile := func(in *ServerInput) {
				in.BindAddress = "10.0.0.1"
				in.DisableAgent = true
				in.TLSSAN = []string{"file.example"}
				in.KubeSchedulerArg = []string{"v=1"}
			}
			got := DefaultServerInput()
			fromFile(&got)
			Overlay(&got, tc.flags)
			want := DefaultServerInput()
			fromFile(&want)
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Overlay gave\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// The CLI derives its flag names from these tags.
func TestServerInputTagsAreFlagNames(t *testing.T) {
	flagName := regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	typ := reflect.TypeFor[ServerInput]()
	var seen []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("yaml")
		if !flagName.MatchString(tag) {
			t.Errorf("field %s has yaml tag %q, want a lowercase-with-dashes name", f.Name, tag)
		}
		if slices.Contains(seen, tag) {
			t.Errorf("yaml tag %q is used twice", tag)
		}
		seen = append(seen, tag)
	}
}

func TestDropKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("# installed by monokube\nserver: https://10.0.0.1:6443\ntoken: mk1::secret\nnode-name: w1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if dropped, err := DropKey(path, "token"); err != nil || !dropped {
		t.Fatalf("DropKey = %v, %v", dropped, err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != "# installed by monokube\nserver: https://10.0.0.1:6443\nnode-name: w1\n" {
		t.Errorf("after DropKey:\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
	}
	if dropped, err := DropKey(path, "token"); err != nil || dropped {
		t.Errorf("second DropKey = %v, %v; want nothing to drop", dropped, err)
	}
	if dropped, err := DropKey(filepath.Join(t.TempDir(), "none.yaml"), "token"); err != nil || dropped {
		t.Errorf("DropKey of a missing file = %v, %v", dropped, err)
	}
}
