package control

import (
	"errors"
	"time"

	encryptionconfigcontroller "k8s.io/apiserver/pkg/server/options/encryptionconfig/controller"
	"k8s.io/component-base/metrics/legacyregistry"
)

// encryptionReloadEvery is how often kube-apiserver looks at its
// encryption config file (upstream: every minute). A key rotation waits
// for every server to reload at each of its stages.
const encryptionReloadEvery = 5 * time.Second

// appliedConfigMetric names the hash of the encryption config the
// apiserver applied, at start and at each reload.
const appliedConfigMetric = "apiserver_encryption_config_controller_last_config_info"

// setEncryptionReload sets how often the in-process apiserver looks at its
// encryption config file; upstream exports the setting for that.
func setEncryptionReload() {
	encryptionconfigcontroller.EncryptionConfigFileChangePollDuration = encryptionReloadEvery
}

// AppliedEncryptionConfig is the hash ("sha256:…" of the file's bytes) of
// the encryption config this process's kube-apiserver runs with.
func AppliedEncryptionConfig() (string, error) {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return "", err
	}
	for _, f := range families {
		if f.GetName() != appliedConfigMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "hash" {
					return l.GetValue(), nil
				}
			}
		}
	}
	return "", errors.New("kube-apiserver reports no encryption config yet")
}
