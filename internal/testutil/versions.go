package testutil

import (
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// WithVersions makes the fake client keep ConfigMaps' resourceVersions as
// the apiserver does: each write gets a new one, and an update over an
// older one is a conflict.
func WithVersions(client *fake.Clientset) *fake.Clientset {
	var mu sync.Mutex
	next := 0
	cms := schema.GroupResource{Resource: "configmaps"}
	client.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		obj, ok := a.(interface{ GetObject() runtime.Object })
		if !ok {
			return false, nil, nil
		}
		switch a.GetVerb() {
		case "create":
			cm := obj.GetObject().(*corev1.ConfigMap).DeepCopy()
			next++
			cm.ResourceVersion = strconv.Itoa(next)
			err := client.Tracker().Create(cms.WithVersion("v1"), cm, cm.Namespace)
			return true, cm, err
		case "update":
			cm := obj.GetObject().(*corev1.ConfigMap).DeepCopy()
			old, err := client.Tracker().Get(cms.WithVersion("v1"), cm.Namespace, cm.Name)
			if err != nil {
				return true, nil, err
			}
			if cm.ResourceVersion != old.(*corev1.ConfigMap).ResourceVersion {
				return true, nil, apierrors.NewConflict(cms, cm.Name, nil)
			}
			next++
			cm.ResourceVersion = strconv.Itoa(next)
			return true, cm, client.Tracker().Update(cms.WithVersion("v1"), cm, cm.Namespace)
		}
		return false, nil, nil
	})
	return client
}
