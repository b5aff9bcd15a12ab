package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/monokube/monokube/internal/apilb"
	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/join"
	"github.com/monokube/monokube/internal/node"
)

// clusterFile records what the node learned when it joined, so a restart
// needs neither the token nor the server.
func clusterFile(l datadir.Layout) string { return l.AgentFile("cluster.json") }

// joined is what a node keeps from joining, as cluster.json: the settings
// in the encoding the server published them in (identity.ClusterSettings).
type joined struct {
	Server   string                   `json:"server"`
	Settings identity.ClusterSettings `json:"settings"`
}

// joinOnce returns what this node learned when it joined, joining now if
// it has not: discovery first, then the node's files.
func joinOnce(ctx context.Context, cfg *config.Agent, l datadir.Layout, creds node.Creds, log *slog.Logger) (joined, error) {
	j, err := loadJoined(clusterFile(l))
	if err != nil {
		return joined{}, err
	}
	if j.Server != "" {
		if j.Server != cfg.Server {
			log.Warn("this node joined another server address; keeping it", "joined", j.Server, "--server", cfg.Server)
		}
		return j, nil
	}
	if cfg.Token == "" {
		return j, errors.New("--token is required to join: copy it from the server's <data-dir>/server/token or create one there with `monokube token create`")
	}
	t, err := join.ParseToken(cfg.Token)
	if err != nil {
		return j, err
	}
	log.Info("joining the cluster", "server", cfg.Server)
	d, err := join.Discover(ctx, cfg.Server, t, join.DefaultPatience(), log)
	if err != nil {
		return j, err
	}
	j = joined{Server: d.Server, Settings: d.Settings}
	if _, err := nodeConfig(cfg, j.Settings); err != nil {
		return joined{}, err // refused before anything is written
	}
	if err := writeJoinFiles(l, creds, d, t); err != nil {
		return joined{}, err
	}
	if err := fsutil.SaveState(clusterFile(l), j); err != nil {
		return j, err
	}
	log.Info("joined: the kubelet now requests its certificates", "server", d.Server)
	return j, nil
}

// loadJoined reads cluster.json. A node that has not joined has none; one
// that cannot be read or holds no server address is a damaged state file,
// and the node joins again (fsutil.LoadState's rule). Settings that do not
// decode are an error naming the key: the node joined, and only the user
// can decide to join again.
func loadJoined(path string) (joined, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return joined{}, nil
	}
	var j joined
	err = json.Unmarshal(data, &j)
	switch {
	case j.Server == "":
		return joined{}, nil
	case err == nil && j.Settings.ClientCA == nil: // decoded settings always hold the client CA
		err = errors.New("it holds no settings")
	}
	if err != nil {
		return joined{}, fmt.Errorf("the cluster settings in %s are invalid (remove it to join again): %w", path, err)
	}
	return j, nil
}

// writeJoinFiles writes the server CA, the client CA kubelets trust and the
// bootstrap kubeconfig holding the token, which names the node's apiserver
// load balancer (it carries the kubelet to the joined server, and to the
// others once it knows them).
func writeJoinFiles(l datadir.Layout, creds node.Creds, d join.Discovery, t join.Token) error {
	if err := l.EnsureAgent(); err != nil {
		return err
	}
	if err := fsutil.WriteFile(l.AgentTLSFile("server-ca.crt"), d.CA, 0o644); err != nil {
		return err
	}
	if err := fsutil.WriteFile(creds.ClientCA, d.Settings.ClientCA, 0o644); err != nil {
		return err
	}
	if ca := d.Settings.KubeletServingCA; ca != nil { // a server from before publishing it: trustSync writes it later
		if err := fsutil.WriteFile(creds.KubeletServingCA, ca, 0o644); err != nil {
			return err
		}
	}
	kc, err := clientcmd.Write(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"cluster": {Server: apilb.URL(apilb.NodeAddr()), CertificateAuthority: l.AgentTLSFile("server-ca.crt")}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"join": {Token: t.Bootstrap()}},
		Contexts:       map[string]*clientcmdapi.Context{"join": {Cluster: "cluster", AuthInfo: "join"}},
		CurrentContext: "join",
	})
	if err != nil {
		return fmt.Errorf("render bootstrap kubeconfig: %w", err)
	}
	return fsutil.WriteFile(creds.BootstrapKubeconfig, kc, 0o600)
}
