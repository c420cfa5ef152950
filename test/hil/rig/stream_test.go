package rig

import (
	"testing"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/playout"
)

// testStream returns samples [from, from+n) of the endless test stream.
func testStream(f media.AudioFormat, from, n int) []int16 {
	out := make([]int16, 0, n)
	fl := f.FrameLen()
	for len(out) < n {
		s := from + len(out)
		fr := audio.TestFrame(f, uint32(s/fl))
		out = append(out, fr[s%fl:min(fl, s%fl+n-len(out))]...)
	}
	return out
}

// units cuts the test stream into device periods starting at sample
// offset o: unit i is [o+i*n, o+(i+1)*n).
func units(f media.AudioFormat, o, count int) [][]int16 {
	n := f.FrameLen()
	var u [][]int16
	for i := range count {
		u = append(u, testStream(f, o+i*n, n))
	}
	return u
}

func cat(parts ...[]int16) []int16 {
	var out []int16
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// fill is an underrun unit: the previous sample ramped to zero in 1 ms.
func fill(f media.AudioFormat, last int16) []int16 {
	u := make([]int16, f.FrameLen())
	steps := f.Rate / 1000
	for i := range steps {
		u[i] = int16(int32(last) * int32(steps-i) / int32(steps+1))
	}
	return u
}

// fadeIn attenuates the first 1 ms of a unit.
func fadeIn(f media.AudioFormat, u []int16) []int16 {
	u = append([]int16(nil), u...)
	steps := f.Rate / 1000 * f.Channels
	for i := range steps {
		u[i] = int16(int32(u[i]) * int32(i) / int32(steps))
	}
	return u
}

// drifted plays the test stream from sample from, n samples out, adjusting
// one sample in every step as the playout buffer's drift compensation
// does: squeeze merges two stream samples, stretch inserts the mean of the
// last output and the next stream sample.
func drifted(f media.AudioFormat, from, n, step int, squeeze bool) []int16 {
	src := testStream(f, from, 2*n)
	out := make([]int16, 0, n)
	e := 0
	for len(out) < n {
		if len(out) > 0 && len(out)%step == 0 {
			if squeeze {
				out = append(out, int16((int32(src[e])+int32(src[e+1]))/2))
				e += 2
			} else {
				out = append(out, int16((int32(out[len(out)-1])+int32(src[e]))/2))
			}
			continue
		}
		out = append(out, src[e])
		e++
	}
	return out
}

func TestCheckStreamFollowsDrift(t *testing.T) {
	f := media.DefaultAudio
	for _, squeeze := range []bool{true, false} {
		// 0.4 % (the fastest correction) and 0.05 %.
		for _, step := range []int{250, 2000} {
			rec := cat(make([]int16, 3000), drifted(f, 77*f.FrameLen()+13, 200*f.FrameLen(), step, squeeze), make([]int16, 500))
			r := CheckStream(f, rec)
			want := 200*f.FrameLen()/step - 1
			if r.Bad != 0 || r.OutOfOrder != 0 || r.Replayed != 0 || r.LostMs != 0 || r.Runs != 1 || r.Adjusted < want || r.Adjusted > want+1 {
				t.Errorf("squeeze %v, one in %d: %v; want one run with %d adjustments", squeeze, step, r, want)
			}
		}
	}
}

func TestCheckStream(t *testing.T) {
	mono := media.DefaultAudio
	stereo := media.AudioFormat{Rate: 16000, Channels: 2, FrameMs: 20}
	silence := func(f media.AudioFormat, frames int) []int16 { return make([]int16, frames*f.FrameLen()) }
	cases := []struct {
		name string
		f    media.AudioFormat
		rec  func(f media.AudioFormat) []int16
		// want
		bad, outOfOrder int
		goodMs, lostMs  float64
	}{
		{"aligned", mono, func(f media.AudioFormat) []int16 { return testStream(f, 0, 100*f.FrameLen()) }, 0, 0, 1000, 0},
		{"cut mid-frame between silences", mono, func(f media.AudioFormat) []int16 {
			return cat(silence(f, 3), testStream(f, 50*f.FrameLen()+137, 40*f.FrameLen()), silence(f, 2))
		}, 0, 0, 400, 0},
		{"underrun fill between periods", mono, func(f media.AudioFormat) []int16 {
			u := units(f, 1000*f.FrameLen()+211, 40)
			return cat(cat(u[:20]...), fill(f, u[19][len(u[19])-1]), fadeIn(f, u[20]), cat(u[21:]...))
		}, 0, 0, 400, 0},
		{"capture overrun inside the first period after silence", mono, func(f media.AudioFormat) []int16 {
			// Seen in the rig: 6 ms of stream frame 0 fading in, then a
			// jump to frame 4 (the capture lost what lay between).
			first := fadeIn(f, testStream(f, 1, 288))
			return cat(silence(f, 2), first, testStream(f, 4*f.FrameLen()+192, 40*f.FrameLen()))
		}, 0, 0, 406, 38},
		{"a piece from elsewhere before a run is bad", mono, func(f media.AudioFormat) []int16 {
			// Later stream, not earlier: not a loss but out of place.
			return cat(silence(f, 2), testStream(f, 90*f.FrameLen(), 288), testStream(f, 4*f.FrameLen()+192, 40*f.FrameLen()))
		}, 1, 0, 400, 0},
		{"dropped period", mono, func(f media.AudioFormat) []int16 {
			u := units(f, 7*f.FrameLen()+5, 40)
			return cat(cat(u[:10]...), cat(u[11:]...))
		}, 0, 0, 390, 10},
		{"corrupt sample", mono, func(f media.AudioFormat) []int16 {
			r := testStream(f, 333, 30*f.FrameLen())
			r[15*f.FrameLen()+100] ^= 0x100
			return r
		}, 1, 0, 300, 0},
		{"replayed buffer", mono, func(f media.AudioFormat) []int16 {
			u := units(f, 3*f.FrameLen()+400, 30)
			return cat(cat(u[:15]...), cat(u[12:15]...), cat(u[15:]...))
		}, 0, 0, 330, 0},
		{"part of a period replayed", mono, func(f media.AudioFormat) []int16 {
			// A sound card that underran plays 384 samples of its stale
			// 3-period ring, and the 384 samples due then are lost.
			all := testStream(f, 100*f.FrameLen()+96, 40*f.FrameLen())
			cut := 20 * f.FrameLen()
			return cat(all[:cut], all[cut-3*f.FrameLen():cut-3*f.FrameLen()+384], all[cut+384:])
		}, 0, 0, 400, 8},
		{"one period between underruns, both sides of it skipped", mono, func(f media.AudioFormat) []int16 {
			// A capture that overran twice (30 ms lost each time) and a
			// playout that underran before the lone period between.
			n := f.FrameLen()
			a := testStream(f, 500*n+384, 20*n)
			lone := fadeIn(f, testStream(f, 500*n+384+20*n+3*n, n))
			b := testStream(f, 500*n+384+20*n+3*n+n+3*n, 20*n)
			return cat(a, fill(f, a[len(a)-1]), silence(f, 2), lone, b)
		}, 0, 0, 410, 60},
		{"fill replayed", mono, func(f media.AudioFormat) []int16 {
			u := units(f, 40*f.FrameLen()+100, 30)
			fl := fill(f, u[9][len(u[9])-1])
			return cat(cat(u[:10]...), fl, fl, cat(u[10:]...)) // the ring replays the fill
		}, 0, 0, 300, 0},
		{"short underrun with drift compensation on", mono, func(f media.AudioFormat) []int16 {
			// Fill for part of a period, then playing resumes.
			a := drifted(f, 30*f.FrameLen(), 20*f.FrameLen()+97, 250, true)
			u := fill(f, a[len(a)-1])[:f.Rate/1000*2+23]
			return cat(a, u, fadeIn(f, testStream(f, 30*f.FrameLen()+20*f.FrameLen()+97+38, 10*f.FrameLen())))
		}, 0, 0, 302, 0},
		{"reordered periods", mono, func(f media.AudioFormat) []int16 {
			u := units(f, 3*f.FrameLen()+400, 30)
			return cat(cat(u[:5]...), cat(u[15:]...), cat(u[5:15]...))
		}, 0, 1, 300, 100},
		{"noise", mono, func(f media.AudioFormat) []int16 {
			r := make([]int16, 20*f.FrameLen())
			for i := range r {
				r[i] = int16(i*7919%2001 - 1000)
			}
			return r
		}, 1, 0, 0, 0},
		{"stereo, fill and drop", stereo, func(f media.AudioFormat) []int16 {
			u := units(f, 9*f.FrameLen()+2*77, 30)
			return cat(cat(u[:10]...), fill(f, u[9][len(u[9])-2]), cat(u[10:20]...), cat(u[21:]...))
		}, 0, 0, 580, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := CheckStream(c.f, c.rec(c.f))
			replayed := 0
			if c.name == "replayed buffer" || c.name == "part of a period replayed" || c.name == "fill replayed" {
				replayed = 1
			}
			if r.Bad != c.bad || r.OutOfOrder != c.outOfOrder || r.Replayed != replayed || r.GoodMs < c.goodMs-2 || r.GoodMs > c.goodMs+2 ||
				r.LostMs < c.lostMs-0.1 || r.LostMs > c.lostMs+0.1 {
				t.Errorf("got %v; want %d bad, %d out of order, %.0f ms good, %.0f ms lost", r, c.bad, c.outOfOrder, c.goodMs, c.lostMs)
			}
		})
	}
}

// playoutFill is the block the playout buffer outputs on the underrun
// after frame: its ramp from frame's last sample to zero, then zeros.
func playoutFill(t *testing.T, f media.AudioFormat, frame []int16) []int16 {
	t.Helper()
	b, err := playout.New(playout.Config{Format: f, Target: playout.MinTarget})
	if err != nil {
		t.Fatal(err)
	}
	n := f.FrameLen()
	dst := make([]int16, n)
	for i := uint32(0); ; i++ {
		b.Push(media.Audio{Seq: i, Samples: frame})
		b.Read(dst)
		if dst[n-1] == frame[n-1] { // playing
			break
		}
		if i > 100 {
			t.Fatal("the playout buffer never started")
		}
	}
	for {
		b.Read(dst)
		if dst[n-1] == 0 && dst[0] != frame[0] { // the fill block
			return append([]int16(nil), dst...)
		}
	}
}

func TestCheckStreamStaleRing(t *testing.T) {
	f := media.DefaultAudio
	n := f.FrameLen()
	silence := func(frames int) []int16 { return make([]int16, frames*n) }
	u := units(f, 200*n+123, 200)
	// Seen in the rig: a 3-period ring holding one period 1.5 s old that
	// the late daemon never rewrote, played again between fresh periods.
	stale := cat(cat(u[:180]...), u[20], u[180], cat(u[181:]...))
	if r := CheckStream(f, stale); r.Bad != 0 || r.OutOfOrder != 0 || r.Replayed != 1 {
		t.Errorf("a period heard 1.6 s before, replayed: %v; want 1 replayed", r)
	}
	// Seen in the rig: the period's first play had 2 ms of it overwritten
	// (the rest heard), then the ring replayed it whole, 320 ms later.
	cut := 2 * f.Rate / 1000
	partly := cat(cat(u[:20]...), make([]int16, cut), u[20][cut:], cat(u[21:180]...), u[20], u[180], cat(u[181:]...))
	if r := CheckStream(f, partly); r.Bad != 0 || r.OutOfOrder != 0 || r.Replayed != 1 {
		t.Errorf("a period heard but for 2 ms, replayed: %v; want 1 replayed", r)
	}
	// The same period never heard before (it was skipped, then came late)
	// is out of order, however it got there.
	late := cat(cat(u[:20]...), cat(u[21:180]...), u[20], u[180], cat(u[181:]...))
	if r := CheckStream(f, late); r.Bad != 0 || r.OutOfOrder != 1 {
		t.Errorf("a period skipped and played 1.6 s late: %v; want 1 out of order", r)
	}
	// Seen in the rig: a fill block (the playout buffer's 2 ms ramp to
	// zero from the last sample it played) after 140 ms of silence, the
	// period before it lost. Silence, not bad.
	fillAfter := playoutFill(t, f, u[60])
	lone := cat(cat(u[:50]...), silence(14), fillAfter, silence(3), cat(u[70:]...))
	if r := CheckStream(f, lone); r.Bad != 0 || r.OutOfOrder != 0 || r.LoneRamps != 1 {
		t.Errorf("a lone fill block: %v; want it counted as a lone ramp", r)
	}
	// A ramp of another shape is not the playout buffer's: bad.
	odd := append([]int16(nil), fillAfter...)
	for i := range odd {
		if odd[i] != 0 {
			odd[i] += 3
		}
	}
	if r := CheckStream(f, cat(cat(u[:50]...), silence(14), odd, silence(3), cat(u[70:]...))); r.Bad != 1 || r.LoneRamps != 0 {
		t.Errorf("a ramp that is not the playout buffer's: %v; want 1 bad", r)
	}
	// Half of the ramp (the capture lost its start) is one still.
	half := append(silence(1)[:len(fillAfter)-(playout.FadeSamples(f)/2)], fillAfter[playout.FadeSamples(f)/2:]...)
	if r := CheckStream(f, cat(cat(u[:50]...), silence(14), half, silence(3), cat(u[70:]...))); r.Bad != 0 || r.LoneRamps != 1 {
		t.Errorf("the second half of a fill block's ramp: %v; want 1 lone ramp", r)
	}
}

func TestAudioRule(t *testing.T) {
	ok := StreamReport{GoodMs: 4000, LostMs: 3000, LoneRamps: 2}
	rule := AudioRule{MinShare: 0.8}
	if err := rule.Check(ok, 4300); err != nil {
		t.Errorf("losses and lone ramps: %v", err)
	}
	for _, c := range []struct {
		name     string
		rep      StreamReport
		playedMs float64
	}{
		{"bad", StreamReport{GoodMs: 4000, Bad: 1, BadMs: 2}, 4300},
		{"out of order", StreamReport{GoodMs: 4000, OutOfOrder: 1}, 4300},
		{"replayed", StreamReport{GoodMs: 4000, Replayed: 1}, 4300},
		{"too little of what was played is good", StreamReport{GoodMs: 3000}, 4300},
		{"nothing played", StreamReport{}, 0},
	} {
		if err := rule.Check(c.rep, c.playedMs); err == nil {
			t.Errorf("%s: passes", c.name)
		}
	}
}

func TestCheckStreamLonePeriodFarAhead(t *testing.T) {
	// Seen in the rig: a guest microphone starved by a busy machine kept
	// 8 ms of stream (faded in, then the playout buffer's underrun ramp),
	// seconds after the run before and holding no index bits. In order
	// before the run after it: good, the audio between lost.
	f := media.DefaultAudio
	n := f.FrameLen()
	a := testStream(f, 100*n, 50*n)
	// Frame offset 40 to 424: the last 32 samples of the frame, which
	// carry its index, are not in it.
	lone := fadeIn(f, testStream(f, 400*n+40, 384))
	// The fill block after a frame that ends as the piece does.
	endsAs := func(p []int16) []int16 { return append(make([]int16, n-len(p)), p...) }
	ramp := playoutFill(t, f, endsAs(lone))
	b := testStream(f, 420*n, 50*n)
	rec := cat(a, make([]int16, 3*n), lone, ramp, make([]int16, 2*n), b)
	r := CheckStream(f, rec)
	if r.Bad != 0 || r.OutOfOrder != 0 || r.Runs != 3 {
		t.Errorf("a lone period 2.5 s ahead: %v; want 3 runs, nothing bad", r)
	}
	// Out of order (after the run after it) it is not explained: bad.
	late := fadeIn(f, testStream(f, 480*n+40, 384))
	rec = cat(a, make([]int16, 3*n), late, playoutFill(t, f, endsAs(late)), make([]int16, 2*n), b)
	if r := CheckStream(f, rec); r.Bad != 1 {
		t.Errorf("a lone period from after the run after it: %v; want 1 bad", r)
	}
}

func TestCheckStreamDriftAtACut(t *testing.T) {
	// Seen in the rig: the playout buffer squeezed a sample two samples
	// before its speaker's ring replayed a stale period, so the run ended
	// in a squeeze with one stream sample after it.
	f := media.DefaultAudio
	n := f.FrameLen()
	a := drifted(f, 300*n+7, 40*n, 250, true)
	cut := 75*250 + 2 // the adjusted sample at 75*250, one more, then the cut
	rec := cat(a[:cut], a[cut-3*n:cut-2*n], make([]int16, 2*n))
	if r := CheckStream(f, rec); r.Bad != 0 || r.OutOfOrder != 0 || r.Replayed != 1 {
		t.Errorf("a squeeze 2 samples before a replay: %v; want 1 replayed, nothing bad", r)
	}
}
