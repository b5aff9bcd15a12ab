package server

import (
	"log/slog"

	"github.com/monokube/monokube/internal/config"
	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
	"github.com/monokube/monokube/internal/identity"
	"github.com/monokube/monokube/internal/node"
)

// Prepare creates (or keeps) everything the control plane reads before it
// starts: the directories, the cluster's identity (identity.Init: PKI,
// encryption and authentication configs, kubeconfigs, including the admin
// one at --write-kubeconfig, and, unless --disable-agent, the credentials
// of the server's own node), and the admission and audit configs.
func Prepare(cfg *config.Server, l datadir.Layout, nc node.Creds, log *slog.Logger) (*identity.Identity, error) {
	if err := l.EnsureServer(); err != nil {
		return nil, err
	}
	if !cfg.DisableAgent {
		if err := l.EnsureAgent(); err != nil {
			return nil, err
		}
	}
	id, err := identity.Init(cfg, l, ownNode(cfg, nc), log)
	if err != nil {
		return nil, err
	}
	c := id.Creds
	for file, data := range map[string][]byte{
		c.AdmissionConfig: control.AdmissionConfig(cfg.PodSecurity), c.AuditPolicy: control.AuditPolicy(),
	} {
		if err := fsutil.WriteFile(file, data, 0o600); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// ownNode names the files the identity issues to the server's own node:
// where nc, the node's credentials, says its kubelet and kube-proxy read
// them. Nil with --disable-agent: no node, nothing to issue.
func ownNode(cfg *config.Server, nc node.Creds) *identity.NodeFiles {
	if cfg.DisableAgent {
		return nil
	}
	return &nc.NodeFiles
}
