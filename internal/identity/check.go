package identity

import (
	"fmt"
	"strings"

	"github.com/monokube/monokube/internal/control"
	"github.com/monokube/monokube/internal/datadir"
	"github.com/monokube/monokube/internal/fsutil"
)

// checkKept refuses to start over etcd data whose keys are gone: a new
// CA, service-account key or encryption key would be made silently, and
// every Secret, service account token and node's trust would be lost.
// The front-proxy, kubelet-serving and apiservice CAs may be made again:
// nothing in etcd depends on them.
func checkKept(l datadir.Layout, c control.Creds) error {
	if !l.HasEtcdData() {
		return nil
	}
	if missing := missingFiles(keptFiles(c)); len(missing) > 0 {
		return missingError(l, missing)
	}
	return nil
}

// keptFiles are the files of the keys etcd's data depends on.
func keptFiles(c control.Creds) []string {
	return []string{
		c.ServerCA.Cert(), c.ServerCA.Key(), c.ClientCA.Cert(), c.ClientCA.Key(),
		c.EtcdCA.Cert(), c.EtcdCA.Key(), c.ServiceKey, c.EncryptionConfig,
	}
}

// identityFiles are every file of the identity proper: each CA's pair,
// the service-account key pair and the encryption config.
func identityFiles(c control.Creds) []string {
	var files []string
	for _, a := range authorities(c) {
		files = append(files, a.files.Cert(), a.files.Key())
	}
	return append(files, c.ServiceKey, c.ServicePub, c.EncryptionConfig)
}

// missingFiles are those of files that cannot be stat'ed, in order.
func missingFiles(files []string) []string {
	var missing []string
	for _, f := range files {
		if !fsutil.Exists(f) {
			missing = append(missing, f)
		}
	}
	return missing
}

// missingError says what is missing of the identity on l and what to do:
// over etcd data, restore it (new keys would void the data); without,
// start a server to make it.
func missingError(l datadir.Layout, missing []string) error {
	what := strings.Join(missing, ", ") + plural(len(missing))
	if !l.HasEtcdData() {
		return fmt.Errorf("the cluster identity in %s is incomplete: %s missing; start `monokube server` with this data dir to make what is missing", l.Server(), what)
	}
	return fmt.Errorf("etcd holds this cluster's data (%s), but %s missing: new keys would make its Secrets, service account tokens and every node's trust invalid; "+
		"restore %s and %s from a backup, or, to start a new cluster and lose the old one, remove %s",
		l.Etcd(), what, l.TLS(), l.Cred(), l.Server())
}

func plural(n int) string {
	if n == 1 {
		return " is"
	}
	return " are"
}
