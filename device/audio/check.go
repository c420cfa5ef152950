package audio

import (
	"fmt"
	"slices"

	"github.com/callbox/callbox/stream/media"
)

// fadeMs is the window at the start of a frame where a playout buffer may
// fade in after silence or ramp to zero on underrun. It must be at least the
// playout buffer's fade (stream/playout.FadeSamples, 2 ms); this package may
// not import stream/playout, so the number is repeated here.
const fadeMs = 2

// Report is what Check found in a recording.
type Report struct {
	Frames     int    // whole frames examined; a partial frame at the end is ignored
	Silence    int    // all zero, or underrun fill: a ramp to zero within the fade window, zero after
	Good       int    // test frames exactly as sent, except a fade window that may be attenuated
	Bad        int    // anything else
	OutOfOrder int    // good frames whose index is not greater than the previous good frame's
	Repeated   int    // good frames whose index was seen before (also counted in OutOfOrder)
	First      uint32 // index of the first good frame; zero if Good is zero
	Last       uint32 // index of the last good frame; zero if Good is zero
}

func (r Report) String() string {
	return fmt.Sprintf("%d frames: %d good (%d..%d), %d silence, %d bad, %d out of order, %d repeated",
		r.Frames, r.Good, r.First, r.Last, r.Silence, r.Bad, r.OutOfOrder, r.Repeated)
}

// Check splits a recording in format f (the zero value means
// media.DefaultAudio) into frames from its first sample and classifies each
// as silence, a good test frame or bad. In the first fade window (2 ms) of a
// test frame each value may be attenuated: |got| <= |want| with the same sign,
// or zero. An invalid f yields an empty Report.
func Check(f media.AudioFormat, samples []int16) Report {
	f, err := format(f)
	if err != nil {
		return Report{}
	}
	var r Report
	n := f.FrameLen()
	window := f.Rate * fadeMs / 1000 * f.Channels
	want := make([]int16, n)
	seen := make(map[uint32]bool) // grows with the recording, which the caller holds anyway
	for frame := range slices.Chunk(samples, n) {
		if len(frame) < n {
			break
		}
		r.Frames++
		idx := frameIndex(frame)
		testFrame(f, idx, want)
		switch {
		case matches(frame, want, window):
			if r.Good > 0 && idx <= r.Last {
				r.OutOfOrder++
			}
			if seen[idx] {
				r.Repeated++
			}
			if r.Good == 0 {
				r.First = idx
			}
			seen[idx] = true
			r.Good++
			r.Last = idx
		case isFill(frame, window, f.Channels):
			r.Silence++
		default:
			r.Bad++
		}
	}
	return r
}

// matches reports whether got is want, allowing attenuation in the window.
func matches(got, want []int16, window int) bool {
	if !slices.Equal(got[window:], want[window:]) {
		return false
	}
	for i, g := range got[:window] {
		w := want[i]
		if g != 0 && ((g < 0) != (w < 0) || abs(g) > abs(w)) {
			return false
		}
	}
	return true
}

// isFill reports whether frame is silence: zero after the window and, in it,
// each channel decaying toward zero without changing sign.
func isFill(frame []int16, window, channels int) bool {
	if slices.ContainsFunc(frame[window:], func(v int16) bool { return v != 0 }) {
		return false
	}
	for i := channels; i < window; i++ {
		p, v := frame[i-channels], frame[i]
		if v != 0 && ((v < 0) != (p < 0) || abs(v) > abs(p)) {
			return false
		}
	}
	return true
}

func abs(v int16) int32 {
	if v < 0 {
		return -int32(v)
	}
	return int32(v)
}
