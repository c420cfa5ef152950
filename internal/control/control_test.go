package control

import (
	"testing"
	"time"
)

func TestAgo(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "just now"},
		{0, "just now"},
		{1999 * time.Millisecond, "just now"},
		{2 * time.Second, "2 s ago"},
		{59*time.Second + 900*time.Millisecond, "59 s ago"},
		{time.Minute, "1 min ago"},
		{2*time.Minute + 59*time.Second, "2 min ago"},
		{59 * time.Minute, "59 min ago"},
		{time.Hour, "1 h ago"},
		{47*time.Hour + 59*time.Minute, "47 h ago"},
		{48 * time.Hour, "2 days ago"},
		{400 * 24 * time.Hour, "400 days ago"},
	} {
		if got := Ago(c.d); got != c.want {
			t.Errorf("Ago(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestSeenSummary(t *testing.T) {
	for _, c := range []struct {
		s    *Sighting
		want string
	}{
		{nil, "never seen since start"},
		{&Sighting{By: SeenByDiscovery, AgoS: 130, Address: "192.168.1.20:7420"}, "seen 2 min ago by discovery at 192.168.1.20:7420"},
		{&Sighting{By: SeenByOurCall, AgoS: 4.2, Address: "door.lan:7420"}, "seen 4 s ago by our call to door.lan:7420"},
		{&Sighting{By: SeenByTheirCall, AgoS: 3 * 3600, Address: "10.0.0.7"}, "seen 3 h ago by its call from 10.0.0.7"},
		{&Sighting{By: SeenByDiscovery, AgoS: 0.5}, "seen just now by discovery"},
	} {
		if got := SeenSummary(c.s); got != c.want {
			t.Errorf("SeenSummary(%+v) = %q, want %q", c.s, got, c.want)
		}
	}
}
