package server

import (
	"log/slog"
	"os"
	"reflect"
	"testing"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/testutil"
)

// The identity issues the server's own node's credentials exactly where
// the node reads them.
func TestOwnNodeIsWhereTheNodeReads(t *testing.T) {
	l := datadir.Layout{Data: "/var/lib/monokube", Run: "/run/monokube"}
	nc := node.NewCreds(l)
	own := ownNode(testutil.ServerConfig(t, l.Data, nil), nc)
	if own == nil {
		t.Fatal("no node files for a server that runs a node")
	}
	v, creds := reflect.ValueOf(*own), reflect.ValueOf(nc)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if got, want := v.Field(i).Interface(), creds.FieldByName(name).Interface(); got != want {
			t.Errorf("%s: identity writes %v, the node reads %v", name, got, want)
		}
	}
	if own := ownNode(testutil.ServerConfig(t, l.Data, func(in *config.ServerInput) { in.DisableAgent = true }), nc); own != nil {
		t.Errorf("node files %+v for a server without a node", own)
	}
}

// Prepare makes the dirs, the identity and the control plane's other
// configs; with --disable-agent, nothing of a node.
func TestPrepare(t *testing.T) {
	for _, disableAgent := range []bool{false, true} {
		dir := t.TempDir()
		l := datadir.Layout{Data: dir, Run: dir + "/run"}
		cfg := testutil.ServerConfig(t, dir, func(in *config.ServerInput) { in.DisableAgent = disableAgent })
		id, err := Prepare(cfg, l, node.NewCreds(l), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{id.Creds.AdmissionConfig, id.Creds.AuditPolicy, id.Creds.EncryptionConfig, id.Creds.SuperAdminKubeconfig} {
			if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("disable-agent %v: %s: %v, %v; want it 0600", disableAgent, f, fi, err)
			}
		}
		_, err = os.Stat(node.NewCreds(l).KubeletKubeconfig)
		if hasNode := err == nil; hasNode == disableAgent || (id.Node != nil) == disableAgent {
			t.Errorf("disable-agent %v: node kubeconfig written %v, node files %+v", disableAgent, hasNode, id.Node)
		}
	}
}
