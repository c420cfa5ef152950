package main

import (
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/identity"
)

// Status lists every paired peer with its latest sighting of each kind,
// the latest of all worded for people; an older sighting never replaces
// a newer one.
func TestPeersSeen(t *testing.T) {
	d, _ := dialBox(t, nil)
	door := newKey(t, "door")
	pairDoor(t, d, door, "192.168.1.20:7420", "")
	garage := newKey(t, "garage")
	if err := d.peers.Add(identity.Peer{Name: "garage", Fingerprint: garage.Fingerprint}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d.sightings.saw(door.Fingerprint, seenOurCall, "192.168.1.20:7420", now.Add(-3*time.Hour))
	d.sightings.saw(door.Fingerprint, seenDiscovery, "192.168.1.21:7420", now.Add(-130*time.Second))
	d.sightings.saw(door.Fingerprint, seenDiscovery, "192.168.1.99:7420", now.Add(-time.Hour)) // older: ignored

	seen := d.peersSeen(now)
	if len(seen) != 2 || seen[0].Name != "door" || seen[1].Name != "garage" {
		t.Fatalf("peers seen: %+v", seen)
	}
	p := seen[0]
	if p.Summary != "seen 2 min ago by discovery at 192.168.1.21:7420" || p.Last != p.Discovery ||
		p.OurCall == nil || p.OurCall.AgoS != 3*3600 || p.TheirCall != nil {
		t.Errorf("door: %+v", p)
	}
	if p.Discovery.By != control.SeenByDiscovery || !p.Discovery.At.Equal(now.Add(-130*time.Second)) {
		t.Errorf("door by discovery: %+v", p.Discovery)
	}
	if g := seen[1]; g.Last != nil || g.Summary != "never seen since start" {
		t.Errorf("garage: %+v", g)
	}

	// A call from the garage is newer than anything: it is the last.
	d.sightings.saw(garage.Fingerprint, seenTheirCall, hostOnly("10.0.0.7:53312"), now)
	if g := d.peersSeen(now.Add(5 * time.Second))[1]; g.Summary != "seen 5 s ago by its call from 10.0.0.7" {
		t.Errorf("garage after its call: %+v", g)
	}
}
