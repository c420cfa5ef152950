package process

import (
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
)

// peerSeen is what b's status says of its paired peer name.
func peerSeen(t *testing.T, b *testbox.Box, name string) control.PeerSeen {
	t.Helper()
	st, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Peers {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("%s's status lists no peer %s: %+v", b.Name, name, st.Peers)
	return control.PeerSeen{}
}

// Status says, for each paired peer, when and how this box last saw it:
// nobody before a call; after it, the caller saw the callee by its call
// and the callee saw the caller by the caller's.
func TestStatusSaysWhenPeersWereSeen(t *testing.T) {
	a, b := start(t, "hall", testbox.Options{AutoAnswer: true}), start(t, "door", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	for _, x := range []struct {
		box  *testbox.Box
		peer string
	}{{a, "door"}, {b, "hall"}} {
		if p := peerSeen(t, x.box, x.peer); p.Last != nil || p.Summary != "never seen since start" {
			t.Errorf("%s before any call: %+v", x.box.Name, p)
		}
	}
	if err := a.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "in call", 10*time.Second)
	waitState(t, b, "in call", 10*time.Second)

	p := peerSeen(t, a, "door")
	if p.OurCall == nil || p.OurCall.Address != b.Addr || p.Last != nil && p.Last.By != control.SeenByOurCall ||
		!strings.HasPrefix(p.Summary, "seen ") || !strings.HasSuffix(p.Summary, " by our call to "+b.Addr) {
		t.Errorf("caller's view of door: %+v", p)
	}
	p = peerSeen(t, b, "hall")
	if p.TheirCall == nil || p.TheirCall.Address != "127.0.0.1" ||
		!strings.HasPrefix(p.Summary, "seen ") || !strings.HasSuffix(p.Summary, " by its call from 127.0.0.1") {
		t.Errorf("callee's view of hall: %+v", p)
	}
	if err := a.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "idle", 5*time.Second)
}
