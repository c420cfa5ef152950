package playout

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// clocked runs a Buffer in simulated time: a frame is sent every 10 ms and
// arrives after delay(seq); the speaker reads a frame every 10 ms. It
// returns the Buffer's stats at the end and the target over time.
func clocked(t *testing.T, cfg Config, seconds int, delay func(seq uint32) time.Duration) (Stats, []time.Duration) {
	t.Helper()
	b, now, start := simBuffer(t, cfg)
	f := b.Format()
	type arrival struct {
		at  time.Time
		seq uint32
	}
	var pending []arrival
	n := seconds * 1000 / f.FrameMs
	dst := make([]int16, f.FrameLen())
	var targets []time.Duration
	for k := 0; k < n; k++ {
		*now = start.Add(time.Duration(k) * f.FrameDuration())
		pending = append(pending, arrival{now.Add(delay(uint32(k))), uint32(k)})
		// Deliver what has arrived by now, in arrival order (TCP: in order).
		for len(pending) > 0 && !pending[0].at.After(*now) {
			b.Push(media.Audio{Seq: pending[0].seq, Samples: frame(f, pending[0].seq)})
			pending = pending[1:]
		}
		b.Read(dst)
		if k%100 == 0 {
			targets = append(targets, b.Stats().Target)
		}
	}
	return b.Stats(), targets
}

// inOrder makes per-frame delays TCP-like: a frame cannot overtake the one
// before it.
func inOrder(d func(uint32) time.Duration) func(uint32) time.Duration {
	var last time.Duration
	var lastSeq uint32
	return func(seq uint32) time.Duration {
		v := d(seq)
		if seq > 0 && v < last-time.Duration(seq-lastSeq)*10*time.Millisecond {
			v = last - time.Duration(seq-lastSeq)*10*time.Millisecond
		}
		last, lastSeq = v, seq
		return v
	}
}

// On a steady link the target stays at its floor and nothing underruns.
func TestAdaptiveTargetStaysAtTheFloorOnASteadyLink(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	st, targets := clocked(t, Config{Format: mono48}, 30, func(uint32) time.Duration {
		return 2*time.Millisecond + time.Duration(rng.IntN(1000))*time.Microsecond
	})
	for _, tg := range targets {
		if tg != DefaultTarget {
			t.Fatalf("target moved to %v on a steady link (targets %v)", tg, targets)
		}
	}
	if st.Underruns != 0 {
		t.Errorf("%d underruns on a steady link", st.Underruns)
	}
}

// On a link whose frames now and then come up to 90 ms late (Wi-Fi
// retries), the target rises to cover them and the underruns that a fixed
// 40 ms target suffers mostly go; it stays under the cap.
func TestAdaptiveTargetFollowsJitter(t *testing.T) {
	wifi := func() func(uint32) time.Duration {
		rng := rand.New(rand.NewPCG(3, 4))
		return inOrder(func(uint32) time.Duration {
			d := 5 * time.Millisecond
			if rng.IntN(100) < 3 { // 3 % of frames held up by a retry burst
				d += time.Duration(30+rng.IntN(60)) * time.Millisecond
			}
			return d
		})
	}
	fixed, _ := clocked(t, Config{Format: mono48, Fixed: true}, 60, wifi())
	adapt, targets := clocked(t, Config{Format: mono48}, 60, wifi())
	t.Logf("fixed 40 ms: %d underruns; adaptive: %d underruns, target now %v, jitter %v, targets %v",
		fixed.Underruns, adapt.Underruns, adapt.Target, adapt.Jitter, targets)
	if fixed.Underruns < 10 {
		t.Fatalf("the link is too kind to test anything: %d underruns with a fixed target", fixed.Underruns)
	}
	// What is left: the two while it learns (the first half second), and
	// the rare frame later than what the target covers (99.5 %).
	if adapt.Underruns*3 > fixed.Underruns {
		t.Errorf("adaptive: %d underruns, fixed: %d; want at most a third", adapt.Underruns, fixed.Underruns)
	}
	if adapt.Target <= DefaultTarget || adapt.Target > DefaultMax-10*time.Millisecond {
		t.Errorf("adaptive target %v, want above the floor and at most the cap less a frame", adapt.Target)
	}
}

// Once the jitter is gone the target comes back down to its floor.
func TestAdaptiveTargetComesBack(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	st, targets := clocked(t, Config{Format: mono48}, 60, inOrder(func(seq uint32) time.Duration {
		if seq < 1000 && rng.IntN(100) < 5 { // the first 10 s only
			return time.Duration(20+rng.IntN(60)) * time.Millisecond
		}
		return 3 * time.Millisecond
	}))
	if max := targets[9]; max <= DefaultTarget {
		t.Errorf("target %v after 10 s of jitter, want raised (targets %v)", max, targets)
	}
	if st.Target != DefaultTarget {
		t.Errorf("target %v 50 s after the jitter ended, want back at %v (targets %v)", st.Target, DefaultTarget, targets)
	}
}

// A network stall of 3 s (TCP holds the frames, then delivers them at
// once) is mostly not jitter: the frames held longer than the cap are left
// out; the few at the end of the burst may raise the target, never past
// the cap, and it comes back to its floor.
func TestAdaptiveTargetAfterAStall(t *testing.T) {
	st, targets := clocked(t, Config{Format: mono48}, 50, func(seq uint32) time.Duration {
		if seq >= 500 && seq < 800 {
			return time.Duration(800-seq)*10*time.Millisecond + 3*time.Millisecond // held 3 s, then all at once
		}
		return 3 * time.Millisecond
	})
	for i, tg := range targets {
		if tg > DefaultMax-10*time.Millisecond {
			t.Errorf("target %v at %d s, above the cap less a frame (targets %v)", tg, i, targets)
			break
		}
	}
	if st.Target != DefaultTarget {
		t.Errorf("target %v 40 s after the stall, want back at the floor (targets %v)", st.Target, targets)
	}
}

// Frames made up for lost packets (media.Audio.Concealed) are pushed when
// the next packet arrives, late by the gap: they are not jitter, and the
// target stays at its floor; the same frames unmarked would raise it.
func TestConcealedFramesAreNotJitter(t *testing.T) {
	run := func(mark bool) time.Duration {
		b, now, start := simBuffer(t, Config{Format: mono48})
		f := b.Format()
		dst := make([]int16, f.FrameLen())
		var lost []uint32
		for k := range uint32(3000) {
			*now = start.Add(time.Duration(k)*f.FrameDuration() + 2*time.Millisecond)
			if k%100 >= 50 && k%100 < 55 { // 5 frames in 100 lost
				lost = append(lost, k)
			} else {
				for _, s := range lost {
					b.Push(media.Audio{Seq: s, Samples: frame(f, s), Concealed: mark})
				}
				lost = lost[:0]
				b.Push(media.Audio{Seq: k, Samples: frame(f, k)})
			}
			b.Read(dst)
		}
		return b.Stats().Target
	}
	if got := run(true); got != DefaultTarget {
		t.Errorf("target %v with the made-up frames marked, want the floor %v", got, DefaultTarget)
	}
	if got := run(false); got <= DefaultTarget {
		t.Errorf("target %v with the same frames unmarked: the test does not see what marking changes", got)
	}
}

// simBuffer makes a Buffer whose clock is *now, starting at start.
func simBuffer(t *testing.T, cfg Config) (b *Buffer, now *time.Time, start time.Time) {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Unix(1000, 0)
	now = new(time.Time)
	*now = start
	b.now = func() time.Time { return *now }
	return b, now, start
}

// A receiver that reads its socket on a tick of its own (a speaker
// pumping the call's datagrams) pushes each frame up to a tick after it
// arrived. With the arrival time on the frame (media.Audio.Arrived) the
// target follows the network's jitter and stays at its floor; pushed
// without it, the tick would look like jitter and raise the target.
func TestArrivalTimesAreTheNetworks(t *testing.T) {
	run := func(stamp bool) time.Duration {
		b, now, start := simBuffer(t, Config{Format: mono48})
		f := b.Format()
		dst := make([]int16, f.FrameLen())
		const tick = 50 * time.Millisecond
		var waiting []media.Audio
		for k := range uint32(3000) {
			at := start.Add(time.Duration(k)*f.FrameDuration() + 2*time.Millisecond + time.Duration(k%3)*time.Millisecond)
			a := media.Audio{Seq: k, Samples: frame(f, k)}
			if stamp {
				a.Arrived = at
			}
			waiting = append(waiting, a)
			*now = at
			if t := at.Sub(start); t/tick != (t+f.FrameDuration())/tick { // the tick falls before the next frame
				for _, w := range waiting {
					b.Push(w)
				}
				waiting = waiting[:0]
			}
			b.Read(dst)
		}
		return b.Stats().Target
	}
	if got := run(true); got != DefaultTarget {
		t.Errorf("target %v with arrival times, want the floor %v", got, DefaultTarget)
	}
	if got := run(false); got <= DefaultTarget {
		t.Errorf("target %v pushed on the tick without arrival times: the test does not see what they change", got)
	}
}
