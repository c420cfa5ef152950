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
	if b := BlinkOf(guest.Samples{Start: true}); !b.Settled(true, 0) {
		t.Errorf("steady on: %+v", b)
	}
}
