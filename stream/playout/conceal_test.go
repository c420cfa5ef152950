package playout

import (
	"testing"
	"time"
)

// plcStub conceals with a constant, as a decoder would continue the last
// audio, and counts its calls.
type plcStub struct {
	value int16
	calls int
}

func (p *plcStub) Conceal(dst []int16) {
	p.calls++
	for i := range dst {
		dst[i] = p.value
	}
}

func TestConcealmentFillsUnderrunsThenRamps(t *testing.T) {
	f := mono48
	b := newBuffer(t, Config{Format: f, Target: 20 * time.Millisecond, Max: 100 * time.Millisecond})
	c := &plcStub{value: 1234}
	b.SetConcealer(c)
	push(b, 0, 1)
	read(b)
	read(b)
	// Dry: every further frame-sized read is concealment, up to ConcealMax.
	max := int(ConcealMax / f.FrameDuration())
	for i := range max {
		out := read(b)
		if out[0] != 1234 || out[len(out)-1] != 1234 {
			t.Fatalf("read %d after the underrun: %d..%d, want concealment", i, out[0], out[len(out)-1])
		}
	}
	// Spent: a ramp from the concealment's last value down to silence.
	out := read(b)
	if out[0] == 0 || out[0] > 1234 || !allZero(out[FadeSamples(f):]) {
		t.Fatalf("after %d concealed frames: starts %d, want a ramp from 1234 to silence", max, out[0])
	}
	st := b.Stats()
	if st.Concealed != uint64(max) || c.calls != max || st.Underruns != 1 {
		t.Fatalf("stats %+v, %d calls; want %d concealed frames, 1 underrun", st, c.calls, max)
	}
}

func TestConcealmentHandsBackWithoutFade(t *testing.T) {
	f := mono48
	b := newBuffer(t, Config{Format: f, Target: 20 * time.Millisecond, Max: 100 * time.Millisecond})
	c := &plcStub{value: -777}
	b.SetConcealer(c)
	push(b, 0, 1)
	read(b)
	read(b)
	if out := read(b); out[0] != -777 {
		t.Fatalf("underrun not concealed: %d", out[0])
	}
	// The next frames arrive: playing resumes at once, exactly, no fade.
	push(b, 2, 3)
	for _, seq := range []uint32{2, 3} {
		out := read(b)
		want := frame(f, seq)
		for i := range out {
			if out[i] != want[i] {
				t.Fatalf("frame %d after concealment: value %d is %d, want %d", seq, i, out[i], want[i])
			}
		}
	}
	// A read of odd size straddles concealment and the handover.
	b = newBuffer(t, Config{Format: f, Target: 20 * time.Millisecond, Max: 100 * time.Millisecond})
	b.SetConcealer(c)
	push(b, 0, 1)
	read(b)
	read(b)
	half := make([]int16, f.FrameLen()/2)
	b.Read(half) // half a concealed frame
	push(b, 2, 3)
	out := make([]int16, f.FrameLen())
	b.Read(out) // the rest of the concealed frame, then frame 2
	n := f.FrameLen() / 2
	if out[0] != -777 || out[n-1] != -777 || out[n] != frame(f, 2)[0] {
		t.Fatalf("straddling read: %d %d %d, want concealment to the frame boundary, then frame 2", out[0], out[n-1], out[n])
	}
}

func TestDropConcealerOnlyItsOwn(t *testing.T) {
	b := newBuffer(t, Config{Format: mono48})
	mine, theirs := &plcStub{value: 1}, &plcStub{value: 2}
	b.SetConcealer(mine)
	b.SetConcealer(theirs) // the next call set its own
	b.DropConcealer(mine)  // the old call ends late
	push(b, 0, 1, 2, 3)
	for range 4 {
		read(b)
	}
	if out := read(b); out[0] != 2 {
		t.Fatalf("concealment %d, want the next call's", out[0])
	}
	b.DropConcealer(theirs)
	b.Reset()
	push(b, 0, 1, 2, 3)
	for range 4 {
		read(b)
	}
	if out := read(b); out[0] == 2 {
		t.Fatal("dropped concealer still used")
	}
}

// TestConcealmentStopsWhenAudioArrives: once frames arrive, the decoder
// behind the Concealer has decoded past the gap, so concealing on would
// not continue what was played: the output ramps down and waits for the
// target instead.
func TestConcealmentStopsWhenAudioArrives(t *testing.T) {
	f := mono48
	b := newBuffer(t, Config{Format: f, Target: 30 * time.Millisecond, Max: 100 * time.Millisecond})
	c := &plcStub{value: 1000}
	b.SetConcealer(c)
	push(b, 0, 1, 2)
	for range 3 {
		read(b)
	}
	if out := read(b); out[0] != 1000 {
		t.Fatalf("underrun not concealed: %d", out[0])
	}
	push(b, 3) // one frame: below the 30 ms target
	out := read(b)
	if out[0] == 0 || out[0] >= 1000 || !allZero(out[FadeSamples(f):]) {
		t.Fatalf("after a frame arrived: starts %d, want a ramp from 1000 to silence", out[0])
	}
	if c.calls != 1 {
		t.Fatalf("%d concealed frames, want 1", c.calls)
	}
	push(b, 4, 5)
	out = read(b)
	if want := frame(f, 3); out[len(out)-1] != want[len(want)-1] || out[0] == want[0] {
		t.Fatalf("at the target: want frame 3 faded in, got %d..%d", out[0], out[len(out)-1])
	}
}
