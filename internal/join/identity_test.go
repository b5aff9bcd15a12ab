package join

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/monokube/monokube/internal/pki"
)

// The identity is readable by its server token's user alone, and owned by
// the token's Secret so that it goes with it.
func TestPublishIdentity(t *testing.T) {
	ctx := context.Background()
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	sec := Secret(tok, Spec{Role: RoleServer}, metav1.Now().Time)
	sec.UID = types.UID("token-uid")
	client := fake.NewClientset(sec)
	if err := PublishIdentity(ctx, client, tok, []byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	name := "monokube-server-join-abcdef"
	s, err := client.CoreV1().Secrets("kube-system").Get(ctx, name, metav1.GetOptions{})
	if err != nil || string(s.Data["identity.json"]) != `{"version":1}` {
		t.Fatalf("identity Secret: %v, %v", s, err)
	}
	r, err := client.RbacV1().Roles("kube-system").Get(ctx, name, metav1.GetOptions{})
	if err != nil || len(r.Rules) != 1 || strings.Join(r.Rules[0].ResourceNames, ",") != name ||
		strings.Join(r.Rules[0].Verbs, ",") != "get" || strings.Join(r.Rules[0].Resources, ",") != "secrets" {
		t.Fatalf("Role: %+v, %v; want get on the one Secret", r, err)
	}
	rb, err := client.RbacV1().RoleBindings("kube-system").Get(ctx, name, metav1.GetOptions{})
	if err != nil || len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "User" || rb.Subjects[0].Name != "system:bootstrap:abcdef" || rb.RoleRef.Name != name {
		t.Fatalf("RoleBinding: %+v, %v; want the token's user bound to the Role", rb, err)
	}
	for _, m := range []metav1.ObjectMeta{s.ObjectMeta, r.ObjectMeta, rb.ObjectMeta} {
		if len(m.OwnerReferences) != 1 || m.OwnerReferences[0].UID != "token-uid" || m.OwnerReferences[0].Name != "bootstrap-token-abcdef" {
			t.Errorf("%s owners = %+v, want the token's Secret", m.Name, m.OwnerReferences)
		}
	}
	if err := PublishIdentity(ctx, client, Token{ID: "zzzzzz", Secret: tok.Secret}, nil); err == nil || !strings.Contains(err.Error(), "find server token zzzzzz") {
		t.Errorf("publishing for a token that is not stored = %v", err)
	}
}

// fakeAPI answers the two requests FetchIdentity makes: who the token is
// (its groups), and the identity Secret (404 when absent).
func fakeAPI(t *testing.T, groups []string, identity *corev1.Secret) (server string, ca []byte) {
	t.Helper()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") != "Bearer abcdef.0123456789abcdef":
			w.WriteHeader(http.StatusUnauthorized)
		case r.Method == http.MethodPost && r.URL.Path == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
			_ = json.NewEncoder(w).Encode(authenticationv1.SelfSubjectReview{
				TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "SelfSubjectReview"},
				Status:   authenticationv1.SelfSubjectReviewStatus{UserInfo: authenticationv1.UserInfo{Username: "system:bootstrap:abcdef", Groups: groups}},
			})
		case r.URL.Path == "/api/v1/namespaces/kube-system/secrets/monokube-server-join-abcdef" && identity != nil:
			_ = json.NewEncoder(w).Encode(identity)
		default:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound})
		}
	}))
	t.Cleanup(ts.Close)
	return ts.URL, pki.CertPEM(ts.Certificate())
}

func TestFetchIdentity(t *testing.T) {
	ctx := context.Background()
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	bundle := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "monokube-server-join-abcdef", Namespace: "kube-system"},
		Data:       map[string][]byte{"identity.json": []byte(`{"version":1}`)}}
	server, ca := fakeAPI(t, []string{"system:bootstrappers", NodesGroup, ServersGroup}, bundle)
	if got, err := FetchIdentity(ctx, server, ca, tok); err != nil || string(got) != `{"version":1}` {
		t.Errorf("FetchIdentity = %q, %v", got, err)
	}
	server, ca = fakeAPI(t, []string{"system:bootstrappers", NodesGroup}, bundle)
	if _, err := FetchIdentity(ctx, server, ca, tok); err == nil || !strings.Contains(err.Error(), "agent token") ||
		!strings.Contains(err.Error(), "token create --role server") {
		t.Errorf("FetchIdentity with an agent token = %v, want the refusal that says to make a server token", err)
	}
	server, ca = fakeAPI(t, []string{NodesGroup, ServersGroup}, nil)
	if _, err := FetchIdentity(ctx, server, ca, tok); err == nil || !strings.Contains(err.Error(), "no identity for server token abcdef") {
		t.Errorf("FetchIdentity without the identity = %v", err)
	}
}
