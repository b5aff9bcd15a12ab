package deploy

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	objs, err := Parse([]byte(`# a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: kube-system}
---
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
- {apiVersion: v1, kind: Secret, metadata: {name: c}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	if strings.Join(got, " ") != "ConfigMap/a ConfigMap/b Secret/c" {
		t.Errorf("Parse = %v", got)
	}
}

func TestParseErrorsNameTheDocument(t *testing.T) {
	for in, want := range map[string]string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [oops\n": "document 2",
		"kind: ConfigMap\nmetadata: {name: a}\n":                                   "no apiVersion",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n":                          "ConfigMap has no metadata.name",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", in, err, want)
		}
	}
}
