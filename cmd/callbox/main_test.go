package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/callbox/callbox/internal/control"
)

// Status lists every paired peer with when it was last seen, in the
// daemon's words; a daemon that sends no list gets no lines.
func TestStatusShowsPeersSeen(t *testing.T) {
	st := control.Status{Name: "hall", Peers: []control.PeerSeen{
		{Name: "door", Summary: "seen 2 min ago by discovery at 192.168.1.20:7420"},
		{Name: "garage", Summary: "never seen since start"},
		{Name: "attic", Last: &control.Sighting{By: control.SeenByOurCall, AgoS: 5, Address: "10.0.0.3:7420"}},
	}}
	var out bytes.Buffer
	printStatus(&out, st)
	for _, want := range []string{
		"peer door: seen 2 min ago by discovery at 192.168.1.20:7420\n",
		"peer garage: never seen since start\n",
		"peer attic: seen 5 s ago by our call to 10.0.0.3:7420\n", // worded here when the daemon did not
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	printStatus(&out, control.Status{Name: "hall", Peers: []control.PeerSeen{}})
	if !strings.Contains(out.String(), "peers: none paired\n") {
		t.Errorf("no peers: %s", out.String())
	}
	out.Reset()
	printStatus(&out, control.Status{Name: "hall"})
	if strings.Contains(out.String(), "\npeer") {
		t.Errorf("an older daemon's status (no list) printed peers:\n%s", out.String())
	}
}
