package playout

import (
	"math"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// clocks is one simulated call: a sender whose sample clock runs senderPPM
// fast, a speaker whose clock runs readerPPM fast (both against true time),
// and a network that delays each frame by base plus up to jitter (in order).
type clocks struct {
	senderPPM, readerPPM float64
	base, jitter         time.Duration
	length               time.Duration
	seed                 uint64
}

// run reports what happened, minute by minute.
type run struct {
	st        Stats
	minutes   []time.Duration // mean depth before each Read, per simulated minute
	minDepth  time.Duration   // smallest depth before a Read after the first minute
	maxDepth  time.Duration   // largest
	misframed int             // blocks that were neither a whole frame nor fill
}

// simulate plays c through a Buffer with cfg in a synctest bubble: the
// sender and the speaker are paced by the bubble's fake clock, so an hour
// takes seconds and the schedule is exactly the one asked for.
func simulate(t *testing.T, cfg Config, c clocks) run {
	t.Helper()
	var r run
	synctest.Test(t, func(t *testing.T) {
		b := newBuffer(t, cfg)
		f := b.Format()
		period := f.FrameDuration()
		sendP := time.Duration(float64(period) / (1 + c.senderPPM/1e6))
		readP := time.Duration(float64(period) / (1 + c.readerPPM/1e6))
		rng := rand.New(rand.NewPCG(c.seed, 7))
		start := time.Now()
		end := start.Add(c.length)
		var (
			sent, reads     int64
			arrive, lastArr time.Time
			sum             time.Duration
			n               int
			minute          = 1
			prevSeq         uint32
			afterSilence    = true
			fade            = FadeSamples(f) * f.Channels
			out             = make([]int16, f.FrameLen())
			checkFrames     = cfg.NoDrift
		)
		r.minDepth = time.Hour
		nextArrival := func() {
			sent++
			a := start.Add(time.Duration(sent)*sendP + c.base + time.Duration(rng.Int64N(int64(c.jitter)+1)))
			if a.Before(lastArr) {
				a = lastArr // the network keeps order
			}
			arrive, lastArr = a, a
		}
		nextArrival()
		for {
			nextRead := start.Add(time.Duration(reads+1) * readP)
			if nextRead.After(end) {
				break
			}
			if arrive.Before(nextRead) {
				time.Sleep(time.Until(arrive))
				push(b, uint32(sent))
				nextArrival()
				continue
			}
			time.Sleep(time.Until(nextRead))
			reads++
			d := b.Stats().Depth
			if time.Since(start) >= time.Duration(minute)*time.Minute {
				r.minutes = append(r.minutes, sum/time.Duration(max(n, 1)))
				sum, n = 0, 0
				minute++
			}
			sum += d
			n++
			if minute > 1 && b.Stats().Playing {
				r.minDepth, r.maxDepth = min(r.minDepth, d), max(r.maxDepth, d)
			}
			b.Read(out)
			st := b.Stats()
			if checkFrames || st.Squeezed+st.Stretched == 0 {
				// Until compensation acts, every block is a whole frame or fill.
				if allZero(out[fade:]) {
					afterSilence = true
					continue
				}
				got := seqOf(f, out)
				window := 0
				if afterSilence {
					window = fade
				}
				// Frames carry seq modulo 16000 (see frame): compare so.
				if step := (int(got) - int(prevSeq) + 16000) % 16000; !spotCheck(out, f, got, window) || prevSeq != 0 && (step == 0 || step > 100) {
					r.misframed++
				}
				prevSeq, afterSilence = got, false
			}
		}
		r.st = b.Stats()
	})
	return r
}

// spotCheck is faded(out, frame(f, seq), window) on 24 positions: a block
// shifted by any number of samples fails it (frame's values cycle every 8
// samples), and it keeps an hour of blocks cheap under the race detector.
func spotCheck(out []int16, f media.AudioFormat, seq uint32, window int) bool {
	want := frame(f, seq)
	n := len(out)
	for _, lo := range []int{window, n / 2, n - 8} {
		if !faded(out[lo:lo+8], want[lo:lo+8], 0) {
			return false
		}
	}
	return faded(out[:window], want[:window], window)
}

func mean(v []time.Duration) time.Duration {
	var s time.Duration
	for _, x := range v {
		s += x
	}
	return s / time.Duration(max(len(v), 1))
}

// TestDriftHour plays an hour between clocks 200 ppm apart, both ways: the
// depth stays near Target all along (no growing delay, no overflow, no
// underrun), and what was squeezed or stretched is the drift, within the
// depth's wobble.
func TestDriftHour(t *testing.T) {
	cfg := Config{Format: mono48} // Target 40 ms, Max 120 ms
	for _, c := range []struct {
		name      string
		ppm       [2]float64 // sender, speaker
		wantDrift float64    // samples the sender gains over the hour
	}{
		{"sender fast", [2]float64{+100, -100}, +200e-6 * 48000 * 3600},
		{"sender slow", [2]float64{-100, +100}, -200e-6 * 48000 * 3600},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := simulate(t, cfg, clocks{senderPPM: c.ppm[0], readerPPM: c.ppm[1],
				base: 5 * time.Millisecond, jitter: 15 * time.Millisecond, length: time.Hour, seed: 1})
			st := r.st
			t.Logf("%+v; depth %v..%v; first minutes %v, last %v", st, r.minDepth, r.maxDepth, r.minutes[:3], r.minutes[len(r.minutes)-3:])
			if st.Underruns != 0 || st.Overflow != 0 {
				t.Errorf("%d underruns, %d overflows; want none", st.Underruns, st.Overflow)
			}
			target := DefaultTarget
			for i, m := range r.minutes[1:] {
				if m < target-20*time.Millisecond || m > target+20*time.Millisecond {
					t.Errorf("minute %d: mean depth %v, want within 20ms of %v", i+2, m, target)
				}
			}
			if r.minDepth < 5*time.Millisecond || r.maxDepth > 75*time.Millisecond {
				t.Errorf("depth ranged %v..%v after the first minute, want within 5ms..75ms", r.minDepth, r.maxDepth)
			}
			first, last := mean(r.minutes[1:11]), mean(r.minutes[len(r.minutes)-10:])
			if d := last - first; d < -10*time.Millisecond || d > 10*time.Millisecond {
				t.Errorf("mean depth moved from %v (minutes 2-11) to %v (last 10): a growing delay", first, last)
			}
			net := float64(st.Squeezed) - float64(st.Stretched)
			if math.Abs(net-c.wantDrift) > 3000 { // 3000 samples: about 60 ms of depth
				t.Errorf("squeezed %d − stretched %d = %.0f samples, want the drift %.0f", st.Squeezed, st.Stretched, net, c.wantDrift)
			}
		})
	}
}

// TestDriftNeededWithoutIt is the control experiment: the same clocks
// without compensation grow the delay to the cap (dropping frames) or run
// dry again and again, within 20 minutes.
func TestDriftNeededWithoutIt(t *testing.T) {
	cfg := Config{Format: mono48, NoDrift: true}
	fast := simulate(t, cfg, clocks{senderPPM: 100, readerPPM: -100, base: 5 * time.Millisecond, jitter: 15 * time.Millisecond, length: 20 * time.Minute, seed: 1})
	if fast.st.Overflow == 0 || fast.maxDepth < 100*time.Millisecond {
		t.Errorf("fast sender without compensation: %+v, max depth %v; want the delay to reach the cap", fast.st, fast.maxDepth)
	}
	slow := simulate(t, cfg, clocks{senderPPM: -100, readerPPM: 100, base: 5 * time.Millisecond, jitter: 15 * time.Millisecond, length: 20 * time.Minute, seed: 1})
	if slow.st.Underruns < 3 {
		t.Errorf("slow sender without compensation: %+v; want repeated underruns", slow.st)
	}
	if fast.misframed+slow.misframed != 0 {
		t.Errorf("without compensation %d blocks were not whole frames", fast.misframed+slow.misframed)
	}
}

// TestDriftIdleOnOneClock: boxes sharing a clock (and jitter, and the first
// seconds of any call) never trigger compensation, so output stays the
// received frames bit for bit, as device/audio.Check expects in the process
// tests.
func TestDriftIdleOnOneClock(t *testing.T) {
	r := simulate(t, Config{Format: mono48}, clocks{base: 5 * time.Millisecond, jitter: 15 * time.Millisecond, length: time.Hour, seed: 2})
	if r.st.Squeezed != 0 || r.st.Stretched != 0 || r.misframed != 0 || r.st.Underruns != 0 {
		t.Errorf("one clock: %+v, %d blocks not whole frames; want no compensation and every frame intact", r.st, r.misframed)
	}
}

// TestDriftTakesBackABurst: a stall followed by a burst leaves the queue
// deeper than Target; compensation takes the extra delay back within a
// minute instead of keeping it for the rest of the call.
func TestDriftTakesBackABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBuffer(t, Config{Format: mono48})
		out := make([]int16, mono48.FrameLen())
		var seq uint32
		tick := func() {
			seq++
			push(b, seq)
			time.Sleep(10 * time.Millisecond)
			b.Read(out)
		}
		for range 1000 { // 10 s of steady play
			tick()
		}
		// 50 ms of frames arrive at once after a stall that the buffer rode out.
		for range 5 {
			seq++
			push(b, seq)
		}
		deep := b.Stats().Depth
		for range 6000 { // a minute
			tick()
		}
		st := b.Stats()
		if st.Squeezed == 0 || st.Depth > deep-30*time.Millisecond || st.Overflow != 0 || st.Underruns != 0 {
			t.Fatalf("after a burst to %v: %+v; want it squeezed back toward %v", deep, st, DefaultTarget)
		}
	})
}

// TestDriftAdjustmentsAreSmooth: while compensating, the waveform has no
// step larger than the signal's own, and samples are neither lost nor
// invented beyond the adjustments counted.
func TestDriftAdjustmentsAreSmooth(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, {Rate: 16000, Channels: 2, FrameMs: 20}} {
		for _, dir := range []driftDir{squeeze, stretch} {
			b := newBuffer(t, Config{Format: f, Max: 2 * time.Second})
			// A 440 Hz tone: steps of at most 2π·440/rate of its amplitude.
			var phase float64
			tone := func(seq uint32) media.Audio {
				s := make([]int16, f.FrameLen())
				for i := 0; i < len(s); i += f.Channels {
					v := int16(20000 * math.Sin(phase))
					phase += 2 * math.Pi * 440 / float64(f.Rate)
					for c := range f.Channels {
						s[i+c] = v
					}
				}
				return media.Audio{Seq: seq, Samples: s}
			}
			limit := int(20000*2*math.Pi*440/float64(f.Rate)) + 2
			var seq uint32
			var got []int16
			for range 40 {
				seq++
				b.Push(tone(seq))
			}
			pushed := 40 * f.FrameSamples()
			out := make([]int16, f.FrameLen())
			b.Read(out) // playing starts
			got = append(got, out...)
			b.mu.Lock()
			b.drift.dir, b.drift.step, b.drift.until = dir, 50, 50 // force correcting, hard
			b.drift.windows = -1 << 30                             // and keep it from deciding otherwise
			b.mu.Unlock()
			for range 20 {
				b.Read(out)
				got = append(got, out...)
			}
			st := b.Stats()
			if st.Underruns != 0 {
				t.Fatalf("%v: underran", f)
			}
			// A squeeze skips half a sample period each side of the merged
			// sample: the waveform steps at most 1.5 times its own step there.
			if dir == squeeze {
				limit = limit * 3 / 2
			}
			// Skip the fade-in at the start.
			if s := maxStep(got[FadeSamples(f)*f.Channels:], f.Channels); s > limit {
				t.Errorf("%v dir %d: step %d > %d", f, dir, s, limit)
			}
			played := len(got)/f.Channels + int(st.Squeezed) - int(st.Stretched)
			// Depth is rounded to whole nanoseconds: allow a sample for it.
			if queued := int(st.Depth * time.Duration(f.Rate) / time.Second); abs(played+queued-pushed) > 1 {
				t.Errorf("%v dir %d: played %d + queued %d (net of %d squeezed, %d stretched) != pushed %d",
					f, dir, played, queued, st.Squeezed, st.Stretched, pushed)
			}
			if st.Squeezed+st.Stretched == 0 {
				t.Errorf("%v dir %d: nothing adjusted", f, dir)
			}
		}
	}
}

// TestDriftAfterAnUnderrun: a gap long enough to run the buffer dry, then the
// late frames all at once: once the call has played for a while, the extra
// depth is taken back without waiting for another settling time.
func TestDriftAfterAnUnderrun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBuffer(t, Config{Format: mono48})
		out := make([]int16, mono48.FrameLen())
		var seq uint32
		tick := func(arrive bool) {
			if arrive {
				seq++
				push(b, seq)
			}
			time.Sleep(10 * time.Millisecond)
			b.Read(out)
		}
		for range 1000 { // 10 s of steady play: settled
			tick(true)
		}
		for range 10 { // 100 ms without arrivals: an underrun
			tick(false)
		}
		for range 9 { // then they come at once, 90 ms of them
			seq++
			push(b, seq)
		}
		st := b.Stats()
		if st.Underruns != 1 {
			t.Fatalf("%+v, want one underrun", st)
		}
		deep := st.Depth
		for range 300 { // 3 s: less than a new settling time
			tick(true)
		}
		if st = b.Stats(); st.Squeezed == 0 {
			t.Fatalf("3 s after a burst to %v: %+v; want squeezing under way", deep, st)
		}
		for range 2000 { // 20 s
			tick(true)
		}
		st = b.Stats()
		if st.Depth > deep-30*time.Millisecond {
			t.Fatalf("after an underrun and a burst to %v: %+v; want it squeezed back toward %v", deep, st, DefaultTarget)
		}
	})
}
