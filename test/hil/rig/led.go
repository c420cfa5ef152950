package rig

import (
	"fmt"
	"slices"

	"github.com/callbox/callbox/test/hil/guest"
)

// Blink is what a sampled output line did: how long it stayed on and off
// between changes. The stretches before the first and after the last
// change are cut by the sampling window and left out.
type Blink struct {
	Start, End bool // the level at the first and the last read
	Changes    int
	LastMs     float64   // when the last change was seen
	On, Off    []float64 // ms
	// Unstalled are the on and off times during which the sampler never
	// stalled (guest.Samples.Stalls): a stall of the guest stretches the
	// time it falls in, for the sampler and the daemon alike.
	Unstalled []float64
	Stalls    []guest.Stall
}

// BlinkOf measures a sampled line.
func BlinkOf(s guest.Samples) Blink {
	b := Blink{Start: s.Start, Changes: len(s.Changes), End: s.Start}
	if n := len(s.Changes); n > 0 {
		b.End, b.LastMs = s.Changes[n-1].Value, s.Changes[n-1].AtMs
	}
	b.Stalls = s.Stalls
	for i := 1; i < len(s.Changes); i++ {
		t0, t1 := s.Changes[i-1].AtMs, s.Changes[i].AtMs
		d := t1 - t0
		if s.Changes[i-1].Value {
			b.On = append(b.On, d)
		} else {
			b.Off = append(b.Off, d)
		}
		// A stall ending at t0 delayed seeing that change: the time from
		// it is shortened, not stretched.
		if !slices.ContainsFunc(s.Stalls, func(st guest.Stall) bool { return st.AtMs > t0 && st.AtMs <= t1 }) {
			b.Unstalled = append(b.Unstalled, d)
		}
	}
	return b
}

// Join adds the on and off times of a later sampling window of the same
// line (and its stalls, timed from its own start): more times for the
// medians when a starved guest blinked or sampled too few in one window.
func (b Blink) Join(o Blink) Blink {
	b.Changes += o.Changes
	b.End, b.LastMs = o.End, o.LastMs
	b.On = append(slices.Clone(b.On), o.On...)
	b.Off = append(slices.Clone(b.Off), o.Off...)
	b.Unstalled = append(slices.Clone(b.Unstalled), o.Unstalled...)
	b.Stalls = append(slices.Clone(b.Stalls), o.Stalls...)
	return b
}

// Steady reports whether the line kept one level: v.
func (b Blink) Steady(v bool) bool { return b.Changes == 0 && b.Start == v }

// Settled reports whether the line reached v with at most one change, seen
// within ms of the start (the sampling began as the pattern was being
// switched), not counting the time the sampler stalled before it (the
// guest did not run then), and kept it.
func (b Blink) Settled(v bool, ms float64) bool {
	if b.End != v || b.Changes > 1 {
		return false
	}
	stalled := 0.0
	for _, st := range b.Stalls {
		if st.AtMs <= b.LastMs {
			stalled += st.Ms
		}
	}
	return b.Changes == 0 || b.LastMs-stalled <= ms
}

// Median returns the median on (or off) time in ms, 0 if none was seen.
func (b Blink) Median(on bool) float64 {
	d := b.Off
	if on {
		d = b.On
	}
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

// Within reports whether every whole on and off time is within tol ms of
// want, and at least min of each were seen.
func (b Blink) Within(want, tol float64, min int) bool {
	if len(b.On) < min || len(b.Off) < min {
		return false
	}
	for _, d := range append(slices.Clone(b.On), b.Off...) {
		if d < want-tol || d > want+tol {
			return false
		}
	}
	return true
}

func (b Blink) String() string {
	if b.Changes == 0 {
		return fmt.Sprintf("steady %s", onOff(b.Start))
	}
	span := func(d []float64) string {
		if len(d) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f ms (%.0f..%.0f, n=%d)", medianOf(d), slices.Min(d), slices.Max(d), len(d))
	}
	stalls := ""
	if len(b.Stalls) > 0 {
		stalls = fmt.Sprintf(", %d sampler stalls", len(b.Stalls))
	}
	return fmt.Sprintf("%d changes, on %s, off %s%s", b.Changes, span(b.On), span(b.Off), stalls)
}

// Blinks reports whether the line blinked with on and off times of want
// ms, measured by a sampler that shares a (possibly emulated and starved)
// CPU with the daemon driving the line: the median on and the median off
// time between want-early and want+late ms, at least min of each, and no
// single time over longest ms. A starved guest's timers fire late and its
// line writes are slow, and the daemon's blinker times each step from the
// end of the one before, so every step is stretched (151 ms medians seen
// for 125 ms steps on a 2-core machine at load 14): late is generous,
// early is not. A stalled sample stretches one time and shortens the next
// (396 ms then 30 ms seen), so single times only bound the pattern from
// above, and only those the sampler saw without a stall of its own (a
// stall of the guest stretches them for the daemon too: 593 ms seen). The
// medians tell fast blink (125 ms) from pair blink (62.5 ms) and slow
// blink (500 ms); longest rejects error blink, whose 700 ms pause a median
// of three off times may hide.
func (b Blink) Blinks(want, early, late, longest float64, min int) bool {
	if len(b.On) < min || len(b.Off) < min {
		return false
	}
	for _, on := range []bool{true, false} {
		if m := b.Median(on); m < want-early || m > want+late {
			return false
		}
	}
	return len(b.Unstalled) == 0 || slices.Max(b.Unstalled) <= longest
}

func medianOf(d []float64) float64 {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}
