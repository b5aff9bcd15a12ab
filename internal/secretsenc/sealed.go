package secretsenc

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/monokube/monokube/internal/identity"
)

// The other rotations (service-account keys, CAs) keep their state the
// same way, as a SealedState in a ConfigMap of Namespace.

// SealedState is a rotation's state as its ConfigMap holds it: the stage,
// the hash of what the stage carries and, unless the rotation finished,
// that payload sealed with a Secrets encryption key.
type SealedState struct {
	Stage, Hash string
	Payload     []byte // opened; nil when finished
	Version     string // the ConfigMap's resourceVersion
}

// Keys of a SealedState ConfigMap's data (this package's own state,
// older, names its payload config.sealed).
const (
	sealedStateStage = "stage"
	sealedStateData  = "sealed"
	sealedStateKey   = "sealedWith"
	sealedStateHash  = "hash"
)

// ReadSealedState reads ConfigMap name and opens its payload with one of
// keys (for info, Seal's), unless its stage is finished: every server
// took that stage before it was saved, and the key that sealed it may be
// gone since. ok is false when there is none. what and command name the
// rotation in the error of a state sealed with a key none of keys is.
func ReadSealedState(ctx context.Context, client kubernetes.Interface, name string, keys []identity.EncryptionKey,
	info, finished, what, command string) (st SealedState, ok bool, err error) {
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	st = SealedState{Stage: cm.Data[sealedStateStage], Hash: cm.Data[sealedStateHash], Version: cm.ResourceVersion}
	if st.Stage == finished {
		return st, true, nil
	}
	key, found := Find(keys, cm.Data[sealedStateKey])
	if !found {
		return st, true, fmt.Errorf("the %s (stage %s) is sealed with Secrets encryption key %s, which this server does not hold: "+
			"finish it from a server that does (`%s`)", what, st.Stage, cm.Data[sealedStateKey], command)
	}
	st.Payload, err = Open(cm.Data[sealedStateData], key, info)
	return st, true, err
}

// SealedStage is the stage of ConfigMap name, without opening it; "" when
// there is none.
func SealedStage(ctx context.Context, client kubernetes.Interface, name string) (string, error) {
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return cm.Data[sealedStateStage], nil
}

// SealedStateData is the ConfigMap data of stage with hash and payload,
// sealed with key for info; a nil payload saves the stage alone (a
// finished rotation that carries nothing).
func SealedStateData(stage, hash string, payload []byte, key identity.EncryptionKey, info string) (map[string]string, error) {
	if payload == nil {
		return map[string]string{sealedStateStage: stage}, nil
	}
	data := map[string]string{sealedStateStage: stage, sealedStateHash: hash}
	sealed, err := Seal(payload, key, info)
	if err != nil {
		return nil, err
	}
	data[sealedStateData], data[sealedStateKey] = sealed, key.Name
	return data, nil
}
