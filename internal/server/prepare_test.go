package server

import (
	"log/slog"
	"os"
	"testing"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/node"
	"github.com/monokube/monokube/internal/testutil"
)

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
