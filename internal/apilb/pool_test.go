package apilb

import (
	"errors"
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

type closer struct{ closed bool }

func (c *closer) Close() error { c.closed = true; return nil }

var errRefused = errors.New("connection refused")

func TestJoinedServerStaysLast(t *testing.T) {
	p := newPool("s1:6443", nil)
	if got := p.addrs(); !slices.Equal(got, []string{"s1:6443"}) {
		t.Fatalf("a new pool: %v, want the joined server alone", got)
	}
	if !p.set([]string{"s3:6443", "s2:6443", "s3:6443"}) {
		t.Fatal("learning two servers changed nothing")
	}
	if got := p.addrs(); !slices.Equal(got, []string{"s2:6443", "s3:6443", "s1:6443"}) {
		t.Errorf("after learning: %v, want the learned ones sorted and the joined one kept last", got)
	}
	if p.set(nil) {
		t.Error("an empty endpoint list emptied the pool; want it ignored")
	}
	if p.set([]string{"s3:6443", "s2:6443"}) {
		t.Error("the same list again counts as a change")
	}
}

func TestDialOrderSticksToTheCurrentServer(t *testing.T) {
	p := newPool("s1:6443", []string{"s1:6443", "s2:6443", "s3:6443"})
	p.dialed("s3:6443", nil)
	if got := p.order(); got[0] != "s3:6443" {
		t.Errorf("order %v: want the server that took the last connection first", got)
	}
	changed, was := p.dialed("s3:6443", errRefused)
	if changed || was != "" {
		t.Error("a refused dial changed the current server")
	}
	if got := p.order(); !slices.Equal(got, []string{"s1:6443", "s2:6443", "s3:6443"}) {
		t.Errorf("order %v: want a server that refused a dial tried last", got)
	}
	if changed, was := p.dialed("s1:6443", nil); !changed || was != "s3:6443" {
		t.Errorf("dialed s1 after s3: changed %v, was %q", changed, was)
	}
}

func TestProbesNeedTwoFailuresAndDropConnections(t *testing.T) {
	p := newPool("s1:6443", []string{"s1:6443", "s2:6443"})
	p.dialed("s1:6443", nil)
	c := &closer{}
	untrack := p.track("s1:6443", c)
	if flipped, drop := p.probed("s1:6443", errRefused); flipped || len(drop) > 0 {
		t.Fatal("one failed probe took the server down")
	}
	flipped, drop := p.probed("s1:6443", errRefused)
	if !flipped || len(drop) != 1 || drop[0] != c {
		t.Fatalf("second failed probe: flipped %v, drop %v; want the server down and its connection given back", flipped, drop)
	}
	if st := p.state("lo"); st.Servers[0].Healthy || st.Servers[0].LastError == "" || st.Servers[0].Connections != 1 {
		t.Errorf("state %+v: want s1 down with its error and one connection", st.Servers[0])
	}
	untrack()
	if flipped, _ := p.probed("s1:6443", nil); !flipped {
		t.Error("a good probe did not bring the server back")
	}
}

func TestTheLastHealthyServerKeepsItsConnections(t *testing.T) {
	p := newPool("s1:6443", []string{"s1:6443", "s2:6443"})
	p.dialed("s2:6443", errRefused)
	p.track("s1:6443", &closer{})
	p.probed("s1:6443", errRefused)
	if _, drop := p.probed("s1:6443", errRefused); len(drop) > 0 {
		t.Error("with no other server healthy, the connections were dropped anyway")
	}
}

func TestPublishedAddresses(t *testing.T) {
	eps := []*discoveryv1.EndpointSlice{{
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.2"}},
			{Addresses: []string{"10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.0.0.4"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}, {
		Ports:     []discoveryv1.EndpointPort{{Name: ptr.To("other"), Port: ptr.To[int32](1)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"}}},
	}}
	if got := published(eps); !slices.Equal(got, []string{"10.0.0.2:6443", "10.0.0.3:6443"}) {
		t.Errorf("published %v: want the ready endpoints on the https port", got)
	}
}

func TestPreferredServerGoesFirstWhileHealthy(t *testing.T) {
	p := newPool("local:2379", []string{"s2:2379", "s3:2379"})
	p.prefer = true
	p.dialed("s3:2379", nil) // the local member refused once, say
	if got := p.order(); got[0] != "local:2379" {
		t.Errorf("order %v: want the preferred server first while it is healthy", got)
	}
	p.probed("local:2379", errRefused)
	p.probed("local:2379", errRefused)
	if got := p.order(); got[0] != "s3:2379" || got[len(got)-1] != "local:2379" {
		t.Errorf("order %v: want the current server first and the down preferred one last", got)
	}
	p.probed("local:2379", nil)
	if got := p.order(); got[0] != "local:2379" {
		t.Errorf("order %v: want the preferred server first again once it answers", got)
	}
}
