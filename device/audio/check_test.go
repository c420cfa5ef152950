package audio

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/callbox/callbox/stream/media"
)

// TestFrameGolden pins the signal: recordings made by one build (or box) must
// check against another's. At 8 kHz, which has no room for the marker, the
// frames are the hum alone, as they were before the marker came.
func TestFrameGolden(t *testing.T) {
	cases := []struct {
		f    media.AudioFormat
		idx  uint32
		want string // first 8 bytes of sha256 of the s16le frame
	}{
		{mono48, 0, "b6323290b43d6f65"},
		{mono48, 123456789, "c092c733f6b53146"},
		{stereo16, 4000000000, "0c7475b4bc6aac26"},
		{media.AudioFormat{Rate: 8000, Channels: 1, FrameMs: 20}, 2999, "259d20a4352967a9"},
	}
	for _, c := range cases {
		frame := TestFrame(c.f, c.idx)
		raw := make([]byte, 2*len(frame))
		for i, v := range frame {
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(raw))[:16]; got != c.want {
			t.Errorf("TestFrame(%+v, %d) hash %s, want %s", c.f, c.idx, got, c.want)
		}
	}
}

func TestFrameIndex(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, stereo16, {Rate: 8000, Channels: 1, FrameMs: 10}} {
		for _, idx := range []uint32{0, 1, 0x80000000, 0xdeadbeef, math.MaxUint32} {
			frame := TestFrame(f, idx)
			if len(frame) != f.FrameLen() {
				t.Fatalf("len %d, want %d", len(frame), f.FrameLen())
			}
			if got := frameIndex(frame); got != idx {
				t.Fatalf("%+v: index %d read back as %d", f, idx, got)
			}
		}
	}
	if TestFrame(media.AudioFormat{Rate: 1, Channels: 1, FrameMs: 10}, 0) != nil {
		t.Fatal("TestFrame with an invalid format returned a frame")
	}
}

// TestSignal checks the signal is voice-like in level and smooth across
// frames: no step larger than its highest harmonic and the marker's highest
// tones and edges allow.
func TestSignal(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, stereo16, {Rate: 8000, Channels: 1, FrameMs: 20}} {
		var s []int16
		for idx := range uint32(5 * 1000 / f.FrameMs) { // 5 s: a whole glide and many syllables
			s = append(s, TestFrame(f, idx)...)
		}
		peak, step := 0.0, 0.0
		var sum float64
		for i := f.Channels; i < len(s); i++ {
			v := float64(s[i])
			peak = max(peak, math.Abs(v))
			step = max(step, math.Abs(v-float64(s[i-f.Channels])))
			sum += v * v
		}
		// The hum peaks at -12 dBFS; the marker's three tones add at
		// most 3*markerAmp, -18 dBFS, where there is room for them.
		lo, hi := -14.0, -11.9
		if f.Rate >= markerMinRate {
			lo, hi = -9.5, -8
		}
		if db := 20 * math.Log10(peak/32768); db < lo || db > hi {
			t.Errorf("%+v: peak %.1f dBFS, want %.1f..%.1f", f, db, lo, hi)
		}
		if rms := math.Sqrt(sum / float64(len(s))); rms < 1000 {
			t.Errorf("%+v: rms %.0f: too quiet to be voice-like", f, rms)
		}
		// Slew bound of the harmonic sum at 250 Hz, plus the index LSB.
		var slew float64
		for h, a := range harmonics {
			slew += float64(a) * float64(h+1)
		}
		limit := slew*2*math.Pi*250/float64(f.Rate) + 2
		if f.Rate >= markerMinRate {
			// Each set's highest tone, and its edges.
			edge := float64(markerEdge(f.FrameSamples()))
			for _, set := range markerDigits {
				top := float64(set.hz(set.tones - 1))
				limit += markerAmp * (2*math.Pi*top/float64(f.Rate) + math.Pi/(2*edge))
			}
		}
		if step > limit {
			t.Errorf("%+v: step %.0f > %.0f: a discontinuity", f, step, limit)
		}
	}
}

func TestGlideSum(t *testing.T) {
	for _, half := range []uint64{1, 2, 5, 8} {
		var sum uint64
		for n := range 2*half + 1 {
			if got := glideSum(n, half); got != sum {
				t.Fatalf("glideSum(%d, %d) = %d, want %d", n, half, got, sum)
			}
			if n < half {
				sum += n
			} else {
				sum += 2*half - n
			}
		}
	}
}

func TestSinQ15(t *testing.T) {
	for i := range 4096 {
		p := uint32(i) << 20
		want := math.Sin(2*math.Pi*float64(p)/(1<<32)) * 32768
		if got := float64(sinQ15(p)); math.Abs(got-want) > 16 {
			t.Fatalf("sinQ15(%#x) = %v, want %.1f", p, got, want)
		}
	}
}

// playoutFade imitates a playout buffer's fade-in: a gain rising to one over
// the window, truncating toward zero.
func playoutFade(frame []int16, f media.AudioFormat) []int16 {
	out := slices.Clone(frame)
	n := f.Rate * fadeMs / 1000
	for i := range n {
		for c := range f.Channels {
			out[i*f.Channels+c] = int16(int32(out[i*f.Channels+c]) * int32(i+1) / int32(n+1))
		}
	}
	return out
}

// playoutRamp imitates underrun fill: a ramp from last to zero, then zeros.
func playoutRamp(f media.AudioFormat, last int16) []int16 {
	out := make([]int16, f.FrameLen())
	n := f.Rate * fadeMs / 1000
	for i := range n {
		for c := range f.Channels {
			out[i*f.Channels+c] = int16(int32(last) * int32(n-i) / int32(n+1))
		}
	}
	return out
}

func TestCheck(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, stereo16} {
		frames := func(idx ...uint32) [][]int16 {
			var out [][]int16
			for _, i := range idx {
				out = append(out, TestFrame(f, i))
			}
			return out
		}
		silence := make([]int16, f.FrameLen())
		cases := []struct {
			name   string
			frames [][]int16
			tail   int // extra values after the frames
			want   Report
		}{
			{"in order", frames(5, 6, 7, 8), 0, Report{Frames: 4, Good: 4, First: 5, Last: 8}},
			{"gap is fine", frames(5, 7), 0, Report{Frames: 2, Good: 2, First: 5, Last: 7}},
			{"empty", nil, 0, Report{}},
			{"silence", [][]int16{silence, TestFrame(f, 1), silence}, 0,
				Report{Frames: 3, Silence: 2, Good: 1, First: 1, Last: 1}},
			{"underrun ramp is silence", [][]int16{TestFrame(f, 1), playoutRamp(f, -9000)}, 0,
				Report{Frames: 2, Silence: 1, Good: 1, First: 1, Last: 1}},
			{"faded first samples", [][]int16{playoutFade(TestFrame(f, 3), f), TestFrame(f, 4)}, 0,
				Report{Frames: 2, Good: 2, First: 3, Last: 4}},
			{"swapped", frames(1, 3, 2, 4), 0, Report{Frames: 4, Good: 4, OutOfOrder: 1, First: 1, Last: 4}},
			{"repeated", frames(1, 2, 2, 3, 1), 0,
				Report{Frames: 5, Good: 5, OutOfOrder: 2, Repeated: 2, First: 1, Last: 1}},
			{"truncated tail", frames(1, 2), f.FrameLen() - 1, Report{Frames: 2, Good: 2, First: 1, Last: 2}},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("%dch/%s", f.Channels, c.name), func(t *testing.T) {
				rec := slices.Concat(c.frames...)
				rec = append(rec, TestFrame(f, 99)[:c.tail]...)
				if got := Check(f, rec); got != c.want {
					t.Fatalf("got  %v\nwant %v", got, c.want)
				}
			})
		}

		// Each corruption turns exactly one good frame bad.
		window := f.Rate * fadeMs / 1000 * f.Channels
		corrupt := []struct {
			name string
			mod  func([]int16)
		}{
			{"sample off by one", func(s []int16) { s[window+10]++ }},
			{"index bit flipped", func(s []int16) { s[len(s)-5] ^= 1 }},
			{"louder in fade window", func(s []int16) { s[1] = s[1]*2 + 1 }},
			{"sign flip in fade window", func(s []int16) { s[2] = -s[2] }},
			{"ramp that grows", func(s []int16) { copy(s, playoutRamp(f, 1000)); s[2*f.Channels] = 1001 }},
			{"noise after the ramp", func(s []int16) { clear(s); s[len(s)/2] = 1 }},
		}
		for _, c := range corrupt {
			t.Run(fmt.Sprintf("%dch/%s", f.Channels, c.name), func(t *testing.T) {
				fs := frames(1, 2, 3)
				c.mod(fs[1])
				want := Report{Frames: 3, Good: 2, Bad: 1, First: 1, Last: 3}
				if got := Check(f, slices.Concat(fs...)); got != want {
					t.Fatalf("got  %v\nwant %v", got, want)
				}
			})
		}
	}
}
