package playout

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/media"
)

var mono48 = media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: 10}

// frame returns a recognisable frame for seq: every value is non-zero and
// depends on seq and position, so a block of output identifies its frame.
func frame(f media.AudioFormat, seq uint32) []int16 {
	s := make([]int16, f.FrameLen())
	for i := range s {
		s[i] = int16(1 + int(seq%16000) + i%8*2000)
	}
	return s
}

// seqOf recovers seq from a block that ends like frame(f, seq).
func seqOf(f media.AudioFormat, block []int16) uint32 {
	n := len(block) - 1
	return uint32(int(block[n]) - 1 - n%8*2000)
}

// newBuffer makes a Buffer with a fixed target: these tests push frames
// faster than real time, which the adaptive target would take for jitter
// (adapt_test.go tests that, on a clock of its own).
func newBuffer(t *testing.T, cfg Config) *Buffer {
	t.Helper()
	cfg.Fixed = true
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func push(b *Buffer, seqs ...uint32) {
	for _, s := range seqs {
		b.Push(media.Audio{Seq: s, Samples: frame(b.Format(), s)})
	}
}

// read returns the next frame-sized block.
func read(b *Buffer) []int16 {
	out := make([]int16, b.Format().FrameLen())
	b.Read(out)
	return out
}

func allZero(s []int16) bool { return !slices.ContainsFunc(s, func(v int16) bool { return v != 0 }) }

// faded reports whether got is want with its first fade samples per channel
// attenuated (|got| <= |want|, same sign or zero) and the rest exact.
func faded(got, want []int16, window int) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := int(got[i]), int(want[i])
		if i >= window {
			if g != w {
				return false
			}
			continue
		}
		if g != 0 && (g > 0) != (w > 0) || abs(g) > abs(w) {
			return false
		}
	}
	return true
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// maxStep is the largest change between consecutive samples of a channel.
func maxStep(s []int16, channels int) int {
	m := 0
	for i := channels; i < len(s); i++ {
		m = max(m, abs(int(s[i])-int(s[i-channels])))
	}
	return m
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		field string // "" when valid
	}{
		{"zero value", Config{}, ""},
		{"explicit", Config{Format: mono48, Target: 20 * time.Millisecond, Max: 30 * time.Millisecond}, ""},
		{"bad format", Config{Format: media.AudioFormat{Rate: 1234, Channels: 1, FrameMs: 10}}, "Format"},
		{"target low", Config{Target: 5 * time.Millisecond}, "Target"},
		{"target negative", Config{Target: -time.Millisecond}, "Target"},
		{"target high", Config{Target: 501 * time.Millisecond, Max: time.Second}, "Target"},
		{"max below target+frame", Config{Target: 40 * time.Millisecond, Max: 49 * time.Millisecond}, "Max"},
		{"max default below target", Config{Target: 200 * time.Millisecond}, "Max"},
		{"max high", Config{Max: 2*time.Second + 1}, "Max"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case c.field != "" && err == nil:
				t.Fatalf("Validate accepted %+v", c.cfg)
			case c.field != "" && !strings.Contains(err.Error(), c.field):
				t.Fatalf("Validate error %q does not name %s", err, c.field)
			}
			if _, err2 := New(c.cfg); (err2 == nil) != (err == nil) {
				t.Fatalf("New error %v, Validate error %v", err2, err)
			}
		})
	}
}

func TestFadeSamples(t *testing.T) {
	for _, c := range []struct{ rate, want int }{{48000, 96}, {8000, 16}, {44100, 88}} {
		if got := FadeSamples(media.AudioFormat{Rate: c.rate, Channels: 1, FrameMs: 10}); got != c.want {
			t.Errorf("FadeSamples(%d Hz) = %d, want %d", c.rate, got, c.want)
		}
	}
}

func TestPrebufferThenPlayInOrder(t *testing.T) {
	b := newBuffer(t, Config{Format: mono48, Target: 30 * time.Millisecond})
	fade := FadeSamples(mono48)
	push(b, 1, 2)
	for range 3 {
		if out := read(b); !allZero(out) {
			t.Fatal("played before Target was queued")
		}
	}
	if b.Stats().Playing {
		t.Fatal("Playing before Target was queued")
	}
	push(b, 3, 4, 5)
	for i, seq := range []uint32{1, 2, 3, 4, 5} {
		out := read(b)
		window := 0
		if i == 0 {
			window = fade
		}
		if !faded(out, frame(mono48, seq), window) {
			t.Fatalf("block %d is not frame %d", i, seq)
		}
	}
	st := b.Stats()
	if st.Pushed != 5 || st.Played != 5 || st.SilenceFrames != 3 || st.Underruns != 0 || !st.Playing || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnderrunRampAndFadeIn(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, {Rate: 8000, Channels: 2, FrameMs: 20}} {
		t.Run("", func(t *testing.T) {
			b := newBuffer(t, Config{Format: f, Target: 20 * time.Millisecond, Max: 100 * time.Millisecond})
			fade := FadeSamples(f)
			loud := func(seq uint32) media.Audio {
				s := make([]int16, f.FrameLen())
				for i := range s {
					s[i] = 30000
					if i%f.Channels == 1 {
						s[i] = -30000 // right channel ramps from its own value
					}
				}
				return media.Audio{Seq: seq, Samples: s}
			}
			for seq := range uint32(2) {
				b.Push(loud(seq))
			}
			var out []int16
			for range 4 { // 2 frames of 20ms or 4 of 10ms are enough
				out = append(out, read(b)...)
			}
			st := b.Stats()
			if st.Underruns != 1 || st.Playing {
				t.Fatalf("after draining: %+v", st)
			}
			end := 2 * f.FrameLen() // where the buffer ran dry
			// The step into the ramp and along it stays small: the signal tail is
			// 30000, a hard cut would step by 30000.
			limit := 30000/(fade+1) + 1
			if s := maxStep(out[end-f.Channels:], f.Channels); s > limit {
				t.Fatalf("underrun step %d > %d", s, limit)
			}
			if !allZero(out[end+fade*f.Channels:]) {
				t.Fatal("fill after the ramp is not silence")
			}
			if out[end] == 0 || out[end+1] == 0 {
				t.Fatal("no ramp: the fill jumped straight to zero")
			}

			// Refill: the first frame after the underrun fades in from zero.
			b.Push(loud(2))
			b.Push(loud(3))
			out = read(b)
			if s := maxStep(append(make([]int16, f.Channels), out...), f.Channels); s > limit {
				t.Fatalf("fade-in step %d > %d", s, limit)
			}
			if !faded(out, loud(2).Samples, fade*f.Channels) {
				t.Fatal("first frame after underrun is not the frame faded in")
			}
			if out[0] == 30000 {
				t.Fatal("first frame after underrun not faded")
			}
		})
	}
}

func TestLatencyCapDropsOldest(t *testing.T) {
	cfg := Config{Format: mono48, Target: 20 * time.Millisecond, Max: 55 * time.Millisecond}
	b := newBuffer(t, cfg)
	for seq := uint32(1); seq <= 20; seq++ {
		push(b, seq)
		if d := b.Stats().Depth; d > cfg.Max {
			t.Fatalf("depth %v > Max %v", d, cfg.Max)
		}
	}
	st := b.Stats()
	if st.Overflow != 15 || st.Depth != 50*time.Millisecond {
		t.Fatalf("stats %+v, want 15 overflow, depth 50ms", st)
	}
	for _, seq := range []uint32{16, 17, 18, 19, 20} {
		if out := read(b); seqOf(mono48, out) != seq {
			t.Fatalf("played frame %d, want %d (the newest survive)", seqOf(mono48, out), seq)
		}
	}
}

func TestLateDuplicateAndRejected(t *testing.T) {
	b := newBuffer(t, Config{Format: mono48, Target: 10 * time.Millisecond})
	push(b, 5, 5, 4, 7)                       // duplicate and late dropped, gap accepted
	b.Push(media.Audio{Seq: 8, Samples: nil}) // wrong length
	b.Push(media.Audio{Seq: 9, Samples: make([]int16, 479)})
	push(b, 8)
	read(b)       // play 5
	read(b)       // play 7
	push(b, 6, 7) // older than what was played
	st := b.Stats()
	if st.Late != 4 || st.Rejected != 2 || st.Pushed != 3 {
		t.Fatalf("stats %+v", st)
	}
	if out := read(b); seqOf(mono48, out) != 8 {
		t.Fatalf("played %d, want 8", seqOf(mono48, out))
	}

	// Seq compares modulo 2^32 so a long call wraps around cleanly.
	b.Reset()
	push(b, 1<<32-1, 0, 1<<32-2)
	if st := b.Stats(); st.Pushed != 2 || st.Late != 1 {
		t.Fatalf("around wrap: %+v", st)
	}
}

// TestFrameAlignment drives random arrivals against frame-sized reads and
// checks every block is one whole frame (faded only after silence) or fill.
// Drift compensation is off: this random walk would (rightly) engage it, and
// then blocks straddle frames (see TestDrift*).
func TestFrameAlignment(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, {Rate: 16000, Channels: 2, FrameMs: 20}} {
		b := newBuffer(t, Config{Format: f, Target: 40 * time.Millisecond, Max: 100 * time.Millisecond, NoDrift: true})
		rng := rand.New(rand.NewPCG(1, 2))
		fade := FadeSamples(f) * f.Channels
		var seq uint32
		var prevSeq uint32
		afterSilence := true
		for range 5000 {
			for range rng.IntN(3) { // 0..2 arrivals per period: bursts and gaps
				seq++
				push(b, seq)
			}
			out := read(b)
			if allZero(out[fade:]) { // fill: silence, maybe with the ramp
				afterSilence = true
				continue
			}
			got := seqOf(f, out)
			window := 0
			if afterSilence {
				window = fade
			}
			if !faded(out, frame(f, got), window) {
				t.Fatalf("block is neither a whole frame nor fill (looks like %d)", got)
			}
			if got <= prevSeq && prevSeq != 0 {
				t.Fatalf("frame %d played after %d", got, prevSeq)
			}
			prevSeq, afterSilence = got, false
		}
		st := b.Stats()
		if st.Underruns == 0 || st.Overflow == 0 {
			t.Fatalf("schedule did not exercise underrun and overflow: %+v", st)
		}
	}
}

// TestOddPeriods checks reads of any length give the same stream as
// frame-sized reads.
func TestOddPeriods(t *testing.T) {
	cfg := Config{Format: mono48, Target: 30 * time.Millisecond, Max: 200 * time.Millisecond}
	want := newBuffer(t, cfg)
	got := newBuffer(t, cfg)
	push(want, 1, 2, 3, 4, 5, 6)
	push(got, 1, 2, 3, 4, 5, 6)
	var w, g []int16
	for range 8 {
		w = append(w, read(want)...)
	}
	for len(g) < len(w) {
		p := make([]int16, min(137, len(w)-len(g)))
		got.Read(p)
		g = append(g, p...)
	}
	if !slices.Equal(w, g) {
		t.Fatal("137-sample reads differ from frame-sized reads")
	}
}

func TestReset(t *testing.T) {
	b := newBuffer(t, Config{Format: mono48, Target: 10 * time.Millisecond})
	push(b, 10, 11, 12)
	read(b)
	b.Reset()
	if st := b.Stats(); st != (Stats{Target: 10 * time.Millisecond}) {
		t.Fatalf("stats after Reset %+v", st)
	}
	out := read(b) // the interrupted audio ramps out instead of clicking
	if out[0] == 0 || !allZero(out[FadeSamples(mono48):]) {
		t.Fatal("no ramp after Reset")
	}
	push(b, 1) // Seq is forgotten: a new call may start anywhere
	if st := b.Stats(); st.Pushed != 1 || st.Late != 0 {
		t.Fatalf("after Reset: %+v", st)
	}
}

func TestConcurrentPushRead(t *testing.T) {
	b := newBuffer(t, Config{})
	const frames = 2000
	var wg sync.WaitGroup
	wg.Go(func() {
		for seq := uint32(1); seq <= frames; seq++ {
			push(b, seq)
		}
	})
	wg.Go(func() {
		out := make([]int16, 333)
		for range frames {
			b.Read(out)
			_ = b.Stats()
		}
	})
	wg.Wait()
	st := b.Stats()
	queued := uint64(st.Depth / mono48.FrameDuration())
	if st.Pushed != frames || st.Played+st.Overflow+queued > frames || st.Played+st.Overflow+queued+1 < frames {
		t.Fatalf("frames unaccounted for: %+v", st)
	}
}
