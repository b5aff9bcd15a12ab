package cli

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/monokube/monokube/internal/mirror"
)

// images ls: each image (by name and digest) with the nodes that hold it
// whole, and apart those holding part of it; the same name at another
// digest is another row.
func TestHeldBy(t *testing.T) {
	echo1, echo2, pause := digest.FromString("echo 1"), digest.FromString("echo 2"), digest.FromString("pause")
	held := heldBy(map[string][]mirror.Image{
		"server-1": {{Name: "x/echo:1", Digest: echo1, Complete: true}, {Name: "x/pause:3", Digest: pause, Complete: true}},
		"agent-2":  {{Name: "x/echo:1", Digest: echo1, Complete: true}, {Name: "x/pause:3", Digest: pause, Complete: true}},
		"agent-1":  {{Name: "x/echo:1", Digest: echo2, Complete: true}, {Name: "x/pause:3", Digest: pause, Complete: false}},
	})
	want := []heldImage{
		{Name: "x/echo:1", Digest: min(echo1.String(), echo2.String())},
		{Name: "x/echo:1", Digest: max(echo1.String(), echo2.String())},
		{Name: "x/pause:3", Digest: pause.String(), Nodes: []string{"agent-2", "server-1"}, Partial: []string{"agent-1"}},
	}
	for i := range 2 {
		if want[i].Digest == echo1.String() {
			want[i].Nodes = []string{"agent-2", "server-1"}
		} else {
			want[i].Nodes = []string{"agent-1"}
		}
	}
	if !reflect.DeepEqual(held, want) {
		t.Errorf("heldBy = %+v\nwant %+v", held, want)
	}
	var out bytes.Buffer
	if err := printHeld(&out, held[2:]); err != nil {
		t.Fatal(err)
	}
	if got, wantOut := out.String(), "IMAGE      DIGEST               NODES\nx/pause:3  "+pause.String()[:19]+"  agent-2,server-1,agent-1(partial)\n"; got != wantOut {
		t.Errorf("printHeld:\n%q\nwant\n%q", got, wantOut)
	}
}
