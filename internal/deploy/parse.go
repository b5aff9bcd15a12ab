// Package deploy keeps the manifests directory applied: every YAML or JSON
// file in it is applied with server-side apply (field manager "monokube"),
// re-applied when it changes, and its objects deleted when it is removed.
// A "<file>.skip" beside a file leaves it alone. A bad file is reported
// with its name and reason and never blocks the others.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Parse splits a manifest file into objects. Empty documents and List
// kinds are handled; an object without apiVersion, kind or name is an error
// naming the document.
func Parse(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		got, err := decode(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		objs = append(objs, got...)
	}
}

func decode(raw []byte) ([]*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096).Decode(&u.Object); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if u.IsList() {
		list, err := u.ToList()
		if err != nil {
			return nil, err
		}
		out := make([]*unstructured.Unstructured, 0, len(list.Items))
		for i := range list.Items {
			if err := check(&list.Items[i]); err != nil {
				return nil, err
			}
			out = append(out, &list.Items[i])
		}
		return out, nil
	}
	if err := check(u); err != nil {
		return nil, err
	}
	return []*unstructured.Unstructured{u}, nil
}

func check(u *unstructured.Unstructured) error {
	switch {
	case u.GetAPIVersion() == "":
		return errors.New("object has no apiVersion")
	case u.GetKind() == "":
		return errors.New("object has no kind")
	case u.GetName() == "":
		return fmt.Errorf("%s has no metadata.name", u.GetKind())
	}
	return nil
}

func stripComments(raw []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(raw), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}
