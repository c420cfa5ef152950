package rig

import (
	"testing"

	"github.com/callbox/callbox/test/hil/guest"
)

func TestBlinkOf(t *testing.T) {
	fast := guest.Samples{Start: false, Changes: []guest.Change{
		{AtMs: 20, Value: true}, {AtMs: 146, Value: false}, {AtMs: 270, Value: true}, {AtMs: 396, Value: false},
		{AtMs: 520, Value: true}, {AtMs: 644, Value: false}, {AtMs: 771, Value: true},
	}}
	b := BlinkOf(fast)
	if !b.Within(125, 10, 3) || b.Median(true) != 126 || b.Steady(false) {
		t.Errorf("fast blink: %v, median on %v", b, b.Median(true))
	}
	if b.Within(500, 100, 1) {
		t.Errorf("fast blink %v within a slow blink's times", b)
	}
	if !BlinkOf(guest.Samples{Start: true}).Steady(true) || BlinkOf(guest.Samples{Start: true}).Steady(false) {
		t.Error("a line that never changed is steady at its start level")
	}
	if BlinkOf(guest.Samples{Changes: []guest.Change{{AtMs: 10, Value: true}}}).Within(125, 50, 1) {
		t.Error("one change is no blink")
	}
}

func TestSettled(t *testing.T) {
	late := guest.Samples{Start: false, Changes: []guest.Change{{AtMs: 12, Value: true}}}
	if b := BlinkOf(late); !b.Settled(true, 100) || b.Settled(false, 100) || b.Settled(true, 10) {
		t.Errorf("switched on at 12 ms: %+v", b)
	}
	blinking := guest.Samples{Start: false, Changes: []guest.Change{{AtMs: 12, Value: true}, {AtMs: 137, Value: false}, {AtMs: 262, Value: true}}}
	if b := BlinkOf(blinking); b.Settled(true, 1000) {
		t.Errorf("blinking line counts as settled: %+v", b)
	}
	stalled := guest.Samples{Start: false, Changes: []guest.Change{{AtMs: 400, Value: true}}, Stalls: []guest.Stall{{AtMs: 390, Ms: 350}}}
	if b := BlinkOf(stalled); !b.Settled(true, 100) {
		t.Errorf("switched on at 400 ms after a 350 ms stall: %+v", b)
	}
	if b := BlinkOf(guest.Samples{Start: false, Changes: []guest.Change{{AtMs: 400, Value: true}}}); b.Settled(true, 100) {
		t.Errorf("switched on at 400 ms without a stall counts as settled: %+v", b)
	}
	if b := BlinkOf(guest.Samples{Start: true}); !b.Settled(true, 0) {
		t.Errorf("steady on: %+v", b)
	}
}

func TestBlinks(t *testing.T) {
	// changes makes samples from on/off times, starting on at 10 ms.
	changes := func(times ...float64) guest.Samples {
		s := guest.Samples{}
		at, v := 10.0, true
		for _, d := range times {
			s.Changes = append(s.Changes, guest.Change{AtMs: at, Value: v})
			at += d
			v = !v
		}
		s.Changes = append(s.Changes, guest.Change{AtMs: at, Value: v})
		return s
	}
	cases := []struct {
		name  string
		times []float64
		want  bool
	}{
		{"fast blink", []float64{125, 125, 126, 124, 125, 125, 125}, true},
		// Seen on arm64 under TCG: a late sample stretched single times
		// to 171 and 178 ms.
		{"fast blink sampled in a starved guest", []float64{130, 121, 171, 136, 128, 178, 134, 133, 140, 126, 135, 137, 129}, true},
		// Seen at load 14 on 2 cores: every step stretched (medians 151
		// and 142 ms), and a guest stall (an on time of 396 ms, the off
		// time after it 30 ms).
		{"fast blink in a guest starved harder", []float64{151, 142, 198, 89, 108, 242, 151, 140, 160, 144, 150, 139}, true},
		{"fast blink across a stall", []float64{128, 139, 396, 30, 99, 144, 130, 141}, true},
		{"pair blink", []float64{62, 63, 62, 63, 62, 63, 62}, false},
		{"pair blink stretched by a starved guest", []float64{88, 89, 88, 89, 88, 89, 88, 89}, false},
		{"error blink", []float64{100, 100, 100, 700, 100, 100, 100}, false},
		{"error blink stretched by a starved guest", []float64{126, 126, 126, 726, 126, 126, 126}, false},
		{"slow blink", []float64{500, 500, 500, 500, 500, 500, 500}, false},
		{"fast blink with a long pause", []float64{125, 125, 125, 700, 125, 125, 125}, false},
		{"too few", []float64{125, 125, 125}, false},
	}
	// Seen on arm64 at load 9: an on time of 593 ms, the guest stalled
	// for most of it (the sampler too: 470 ms between two reads).
	stalled := changes(125, 130, 593, 85, 112, 192, 191, 125, 130)
	stalled.Stalls = []guest.Stall{{AtMs: 10 + 125 + 130 + 500, Ms: 470}}
	if b := BlinkOf(stalled); !b.Blinks(125, 20, 75, 600, 3) || len(b.Unstalled) != len(b.On)+len(b.Off)-1 {
		t.Errorf("fast blink with a guest stall: %v, unstalled %v", b, b.Unstalled)
	}
	unstalled := changes(125, 130, 700, 85, 112, 192, 191, 125, 130)
	if b := BlinkOf(unstalled); b.Blinks(125, 20, 75, 600, 3) {
		t.Errorf("a 700 ms pause without a stall passes: %v", b)
	}
	for _, c := range cases {
		if got := BlinkOf(changes(c.times...)).Blinks(125, 20, 75, 600, 3); got != c.want {
			t.Errorf("%s: Blinks = %v, want %v (%v)", c.name, got, c.want, BlinkOf(changes(c.times...)))
		}
	}
}

func TestBlinkJoin(t *testing.T) {
	// Seen at load 7: a starved guest blinked 6 times in a 2 s window,
	// two on times only; a second window adds to them.
	a := BlinkOf(guest.Samples{Changes: []guest.Change{{AtMs: 10, Value: true}, {AtMs: 179, Value: false}, {AtMs: 308, Value: true}, {AtMs: 438, Value: false}, {AtMs: 750, Value: true}}})
	if a.Blinks(125, 20, 75, 600, 3) {
		t.Fatalf("one window with 2 on times passes: %v", a)
	}
	b := BlinkOf(guest.Samples{Changes: []guest.Change{{AtMs: 5, Value: true}, {AtMs: 140, Value: false}, {AtMs: 270, Value: true}, {AtMs: 400, Value: false}}})
	j := a.Join(b)
	if len(j.On) != 4 || len(j.Off) != 3 || j.Changes != 9 || !j.Blinks(125, 20, 75, 600, 3) {
		t.Errorf("joined: %v (on %v, off %v)", j, j.On, j.Off)
	}
}
