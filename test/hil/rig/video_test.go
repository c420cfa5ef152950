package rig

import (
	"strings"
	"testing"
)

func TestOrderOf(t *testing.T) {
	o := OrderOf([]uint32{3, 5, 5, 9, 4, 10})
	if o != (FrameOrder{Distinct: 5, Backwards: 1, Repeats: 1}) {
		t.Errorf("OrderOf = %+v", o)
	}
	if o := OrderOf(nil); o != (FrameOrder{}) {
		t.Errorf("OrderOf(nil) = %+v", o)
	}
}

func TestVideoCountsCheck(t *testing.T) {
	// A slow guest: 120 of 200 fed frames recorded, every one it sent
	// arrived, the sink took them all. Passes: the rule is against what
	// the guest sent, with a floor of a third of the feed.
	numbers := func(from, n, step uint32) []uint32 {
		var s []uint32
		for i := range n {
			s = append(s, from+i*step)
		}
		return s
	}
	slow := VideoCounts{SentAt: 100, ArrivedBy: 100, Received: 121, SinkDrops: 1, Recorded: 120,
		Numbers: numbers(40, 120, 1), Fed: 200, MinShare: 1.0 / 3}
	if err := slow.Check(); err != nil {
		t.Errorf("slow guest: %v", err)
	}
	cases := []struct {
		name   string
		change func(v *VideoCounts)
		want   string // in the error
	}{
		{"a frame sent never arrived", func(v *VideoCounts) { v.ArrivedBy = 99 }, "1 lost in the daemons"},
		{"the recording misses frames the sink took", func(v *VideoCounts) { v.Recorded, v.Numbers = 110, v.Numbers[:110] }, "recorded 110 frames, its sink took 120"},
		{"more recorded than received", func(v *VideoCounts) { v.Received = 100 }, "recorded 120 frames"},
		{"a frame repeated", func(v *VideoCounts) { v.Numbers[7] = v.Numbers[6] }, "1 repeated"},
		{"frames swapped", func(v *VideoCounts) { v.Numbers[7], v.Numbers[8] = v.Numbers[8], v.Numbers[7] }, "1 went backwards"},
		{"a frame now and then", func(v *VideoCounts) {
			v.Numbers = numbers(40, 60, 3)
			v.Recorded, v.Received, v.SinkDrops = 60, 60, 0
		}, "only 30.0% of the 200 frames"},
		{"nothing recorded", func(v *VideoCounts) {
			v.Numbers, v.Recorded, v.Received, v.SinkDrops, v.SentAt, v.ArrivedBy = nil, 0, 0, 0, 0, 0
		}, "no frames recorded"},
	}
	for _, c := range cases {
		v := slow
		v.Numbers = append([]uint32(nil), slow.Numbers...)
		c.change(&v)
		err := v.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error with %q", c.name, err, c.want)
		}
	}
	// Without numbers (a raw camera the guest encodes) there is no share.
	raw := VideoCounts{SentAt: 9, ArrivedBy: 9, Received: 12, Recorded: 12}
	if err := raw.Check(); err != nil || raw.Share() != 0 {
		t.Errorf("raw camera: %v, share %v", err, raw.Share())
	}
}
