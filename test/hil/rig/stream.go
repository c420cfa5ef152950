package rig

import (
	"fmt"
	"slices"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/playout"
)

// fadeMs is the window in which a playout buffer may fade audio in after
// silence or ramp it to zero on an underrun; the same rule as audio.Check.
const fadeMs = 2

// maxReplayMs is how far back a stretch of the recording is looked for
// when a piece that is not the stream may repeat it (a replayed fill), and
// how far back of the run before a short piece of the stream is looked for:
// a sound card that underruns replays its stale ring buffer, of which the
// daemon queues at most 8 periods (audio.periods' largest) of 10 ms (the
// rest of its ring is zeroed). A run of the stream that
// repeats what was heard before counts as a replay however old it is (see
// CheckStream).
const maxReplayMs = 80

// maxIndex bounds the test frame indices looked for: an hour of frames.
const maxIndex = 100 * 3600

// StreamReport is what CheckStream found in a recording.
type StreamReport struct {
	Samples    int     // samples examined (all channels)
	GoodMs     float64 // audio that is the test stream, exactly (fade windows allowed)
	SilenceMs  float64 // zeros and underrun ramps
	LostMs     float64 // test stream skipped between runs (dropped in transit or in playout)
	Runs       int     // stretches of the test stream without a break
	Bad        int     // stretches that are neither the test stream nor silence
	BadMs      float64
	Adjusted   int     // samples a playout buffer squeezed or stretched for drift (followed, not counted as breaks)
	OutOfOrder int     // runs starting before the furthest point of the stream reached, other than replays
	Replayed   int     // runs repeating stream heard before (at least half of it), or starting at most maxReplayMs before the furthest point (a replayed buffer)
	LoneRamps  int     // underrun ramps with silence before them (their run was lost), counted as silence
	BadAt      []int   // recording positions (samples) of the first bad stretches, at most 8
	First      float64 // stream position of the first good sample, in test frames
	Last       float64 // stream position after the last good sample, in test frames
}

func (r StreamReport) String() string {
	return fmt.Sprintf("%.0f ms good in %d runs (frames %.1f..%.1f), %.0f ms silence (%d lone ramps), %.0f ms lost, %d bad (%.1f ms), %d out of order, %d replayed, %d drift adjustments",
		r.GoodMs, r.Runs, r.First, r.Last, r.SilenceMs, r.LoneRamps, r.LostMs, r.Bad, r.BadMs, r.OutOfOrder, r.Replayed, r.Adjusted)
}

// CheckStream checks a recording of audio.TestFrame frames that went
// through devices which cut the stream at their own period boundaries: a
// loopback sound card, a capture started at any moment, a playout buffer
// that inserts fill, drops audio or adjusts single samples for clock drift.
// Unlike audio.Check it does not need the recording to start at a frame
// boundary. It finds runs of the test stream (each anchored by 64 samples
// that end a test frame, whose index audio.TestFrame hid there, then
// followed sample by sample both ways through drift adjustments), then
// pieces too short to hold an anchor (a lone period between underruns,
// near the run before or found by its index bits). It allows the fade
// windows audio.Check allows at their edges and counts zeros as silence,
// and so is a whole underrun ramp (stream/playout's, exactly) after
// silence: a fill block whose stream before it the recording lost.
// Runs must follow each other in stream order. A run that repeats stream
// heard before in the recording, or starts at most maxReplayMs before the
// furthest point reached, and a stretch that repeats what was played at
// most maxReplayMs before, are counted apart as replays: what an ALSA
// device whose stop threshold is its boundary plays after an underrun, its
// stale ring buffer. Parts of that ring the late daemon does not rewrite
// can hold audio seconds old (seen in the rig: 1.5 s); it is still audio
// heard before, at least half of it (seen: a period whose first play had
// 2 ms of it overwritten). A run of stream not heard before that starts
// before the furthest point reached is out of order. Everything else is bad. It is a
// pure function; it allocates a cache of test frames.
func CheckStream(f media.AudioFormat, samples []int16) StreamReport {
	c := &streamChecker{f: f, n: f.FrameLen(), ch: f.Channels, window: f.Rate * fadeMs / 1000 * f.Channels,
		fade: playout.FadeSamples(f), frames: map[uint32][]int16{}}
	return c.check(samples)
}

type streamChecker struct {
	adjusted int // drift adjustments followed
	f        media.AudioFormat
	n        int // samples per frame
	ch       int
	window   int
	fade     int // the playout buffer's underrun ramp, samples per channel
	frames   map[uint32][]int16
}

// frame returns test frame k (cached).
func (c *streamChecker) frame(k uint32) []int16 {
	fr, ok := c.frames[k]
	if !ok {
		fr = audio.TestFrame(c.f, k)
		c.frames[k] = fr
	}
	return fr
}

// at returns sample s of the endless test stream (s >= 0).
func (c *streamChecker) at(s int) int16 {
	return c.frame(uint32(s / c.n))[s%c.n]
}

// index reads the index hidden in the last 32 samples of a test frame.
func index(tail []int16) uint32 {
	var k uint32
	for _, v := range tail {
		k = k<<1 | uint32(v&1)
	}
	return k
}

// anchorLen is how many samples must match the stream exactly, ending
// with the index bits of a test frame, to anchor a run: far more than a
// chance match, and fewer than the samples between two drift adjustments.
const anchorLen = 64

// anchorAt reports whether a test frame ends at xe, the anchorLen samples
// before it matching the stream exactly; d is then the shift from recording
// to stream positions (stream = recording - d).
func (c *streamChecker) anchorAt(r []int16, xe int) (d int, ok bool) {
	if xe-anchorLen < 0 || xe > len(r) {
		return 0, false
	}
	k := index(r[xe-32 : xe])
	if k > maxIndex {
		return 0, false
	}
	fr := c.frame(k)
	for i := 1; i <= anchorLen; i++ { // the index end first: cheapest rejection
		if r[xe-i] != fr[c.n-i] {
			return 0, false
		}
	}
	return xe - int(k+1)*c.n, true
}

// extend follows the stream from recording position b (shift d) up to
// end, through drift adjustments: a sample that is the mean of the two
// stream samples it replaces (a squeeze: the stream goes on one sample
// further on) or the mean of the sample before it and the next stream
// sample (a stretch: the stream goes on where it was). It returns where
// the match ends and the shift there.
func (c *streamChecker) extend(r []int16, b, end, d int) (int, int) {
	for b+c.ch <= end && b-d >= 0 {
		e := b - d
		got := r[b : b+c.ch]
		if equalFrame(got, c, e) {
			b += c.ch
			continue
		}
		switch {
		case c.mean(got, c.stream(e), c.stream(e+c.ch)) && c.follows(r, b+c.ch, end, d-c.ch):
			d -= c.ch
		case b >= c.ch && c.mean(got, r[b-c.ch:b], c.stream(e)) && c.follows(r, b+c.ch, end, d+c.ch):
			d += c.ch
		// The adjusted sample was the one before, equal to the stream
		// sample it stood for by chance (near a peak).
		case e >= c.ch && c.mean(r[b-c.ch:b], c.stream(e-c.ch), c.stream(e)) && c.follows(r, b, end, d-c.ch):
			d -= c.ch
			c.adjusted++
			continue
		case b >= 2*c.ch && e >= c.ch && c.mean(r[b-c.ch:b], r[b-2*c.ch:b-c.ch], c.stream(e-c.ch)) && c.follows(r, b, end, d+c.ch):
			d += c.ch
			c.adjusted++
			continue
		default:
			return b, d
		}
		c.adjusted++
		b += c.ch
	}
	return b, d
}

// extendBack is extend going backwards from a (the first matched sample)
// down to lo. Seen backwards, a squeezed sample is followed by the stream
// two samples further back, a stretched one by the same.
func (c *streamChecker) extendBack(r []int16, a, lo, d int) (int, int) {
	for a-c.ch >= lo && a-c.ch-d >= 0 {
		x := a - c.ch // the sample looked at
		e := a - d    // stream position of the sample after it
		got := r[x:a]
		if equalFrame(got, c, x-d) {
			a = x
			continue
		}
		switch {
		case e-2*c.ch >= 0 && c.mean(got, c.stream(e-2*c.ch), c.stream(e-c.ch)) && c.followsBack(r, x, lo, d+c.ch):
			d += c.ch
		case x-c.ch >= lo && c.mean(got, r[x-c.ch:x], c.stream(e)) && c.followsBack(r, x, lo, d-c.ch):
			d -= c.ch
		default:
			return a, d
		}
		c.adjusted++
		a = x
	}
	return a, d
}

// followsBack is follows for the samples before x.
func (c *streamChecker) followsBack(r []int16, x, lo, d int) bool {
	for i := 0; i < 8*c.ch && x-c.ch >= lo; i += c.ch {
		x -= c.ch
		if x-d < 0 || !equalFrame(r[x:x+c.ch], c, x-d) {
			return false
		}
	}
	return true
}

// stream returns one sample frame of the stream at s.
func (c *streamChecker) stream(s int) []int16 {
	out := make([]int16, c.ch)
	for j := range out {
		out[j] = c.at(s + j)
	}
	return out
}

// mean reports whether got is, channel by channel, the mean of x and y as
// the playout buffer computes it.
func (c *streamChecker) mean(got, x, y []int16) bool {
	for j := range got {
		if got[j] != int16((int32(x[j])+int32(y[j]))/2) {
			return false
		}
	}
	return true
}

// follows reports whether the stream goes on exactly from x with shift d
// for a few samples (or to end).
func (c *streamChecker) follows(r []int16, x, end, d int) bool {
	for i := 0; i < 8*c.ch && x+c.ch <= end; i += c.ch {
		if x-d < 0 || !equalFrame(r[x:x+c.ch], c, x-d) {
			return false
		}
		x += c.ch
	}
	return true
}

// attenuated is the fade rule: silent, or the same sign and no louder.
func attenuated(got, want int16) bool {
	if got == 0 {
		return true
	}
	return (got < 0) == (want < 0) && abs32(got) <= abs32(want)
}

func abs32(v int16) int32 {
	if v < 0 {
		return -int32(v)
	}
	return int32(v)
}

type run struct {
	a, b int // recording range [a, b)
	d    int // stream position = recording position - d, at a
	dEnd int // the same at b: drift adjustments inside the run move it
}

// runs finds the runs of the exact stream: each anchored by a whole test
// frame and extended sample by sample both ways; then, in the gaps between
// them, shorter pieces (a single device period cut across two test frames,
// between two underruns) found through the index bits they hold or as the
// continuation of the run before.
func (c *streamChecker) runs(r []int16) []run {
	var runs []run
	for xe := anchorLen; xe <= len(r); {
		d, ok := c.anchorAt(r, xe)
		if !ok {
			xe += c.ch
			continue
		}
		lo := 0
		if len(runs) > 0 {
			lo = runs[len(runs)-1].b
		}
		a, dStart := c.extendBack(r, xe-anchorLen, lo, d)
		b, dEnd := c.extend(r, xe, len(r), d)
		runs = append(runs, run{a: a, b: b, d: dStart, dEnd: dEnd})
		xe = b + anchorLen
	}
	var all []run
	prev := -1 // stream position after the last run or piece
	pos := 0
	for i := 0; i <= len(runs); i++ {
		end := len(r)
		if i < len(runs) {
			end = runs[i].a
		}
		for p := pos; p < end; {
			if r[p] == 0 {
				p++
				continue
			}
			// A stretch ends at a run of zeros longer than a waveform's
			// zero crossing.
			q, zeros := p, 0
			for q < end && zeros < minGap {
				if r[q] == 0 {
					zeros++
				} else {
					zeros = 0
				}
				q++
			}
			q -= zeros
			next := -1
			if i < len(runs) {
				next = runs[i].a - runs[i].d
			}
			pc, ok := c.piece(r, p, q, prev, next)
			if !ok {
				p = q
				continue
			}
			// What follows the piece in the stretch (an underrun ramp,
			// or another period from elsewhere) is looked at again.
			all = append(all, pc)
			prev = pc.b - pc.dEnd
			p = pc.b
		}
		if i == len(runs) {
			break
		}
		all = append(all, runs[i])
		prev = runs[i].b - runs[i].dEnd
		pos = runs[i].b
	}
	return all
}

// replayed reports whether r[x:y] repeats what the recording held up to
// maxReplayMs earlier: a sound card replaying its stale ring buffer after
// an underrun, whatever it held (stream, fill or silence).
func (c *streamChecker) replayed(r []int16, x, y int) bool {
	most := c.f.Rate * maxReplayMs / 1000 * c.ch
	for l := c.ch; l <= most && x-l >= 0; l += c.ch {
		if slicesEqual(r[x:y], r[x-l:y-l]) {
			return true
		}
	}
	return false
}

func slicesEqual(a, b []int16) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// minGap is the shortest run of zeros taken as silence between pieces.
const minGap = 16

// maxJumpMs is how far ahead of the run before a piece is looked for: a
// capture that overran skips what its buffer held, more than once perhaps.
const maxJumpMs = 1000

// maxBetweenMs is how far before the run after it a piece is looked for
// when it is not near the run before.
const maxBetweenMs = 10000

// minPiece is the shortest exact stretch accepted as a piece of the stream
// outside a run: long enough that a chance match is out of the question.
const minPiece = 64

// piece tries to explain the start of the nonzero stretch [p, q) as a
// short slice of the stream: a fade-in of at most the fade window and an
// exact part of at least minPiece samples. prev is the stream position
// after the run before it, next where the run after it starts; -1: none.
func (c *streamChecker) piece(r []int16, p, q, prev, next int) (run, bool) {
	if q-p < minPiece {
		return run{}, false
	}
	try := func(d int) (run, bool) {
		// The exact part: the first minPiece samples matching the stream
		// that start within the fade window, and all that follow.
		a := p
		for ; a-p <= c.window; a += c.ch {
			if a-d >= 0 && a+minPiece <= q && equalFrame(r[a:a+minPiece], c, a-d) {
				break
			}
		}
		if a-p > c.window {
			return run{}, false
		}
		b, dEnd := c.extend(r, a, q, d)
		if b-a < minPiece {
			return run{}, false
		}
		if a > p && (p-d < 0 || !fadesIn(r[p:a], c, p-d)) {
			return run{}, false
		}
		return run{a: a, b: b, d: d, dEnd: dEnd}, true
	}
	// Near the run before: its continuation after an underrun, a replay
	// of a sound card's stale buffer (up to maxReplayMs back), or a jump
	// ahead after a capture overrun (up to maxJumpMs). Within a fade-in the
	// index bits are lost, so every position is tried.
	if prev >= 0 {
		back := c.f.Rate * maxReplayMs / 1000 * c.ch
		ahead := c.f.Rate * maxJumpMs / 1000 * c.ch
		for s := max(prev-back, 0); s <= prev+ahead; s += c.ch {
			if rn, ok := try(p - s); ok {
				return rn, true
			}
		}
	}
	// Further on, in order before the run after it: a lone period between
	// underruns that a starved capture kept, having lost more than
	// maxJumpMs before it (seen in the rig: 8 ms of stream between a
	// fade-in and an underrun ramp, no index bits in it). Up to
	// maxBetweenMs.
	if next >= 0 {
		lo := max(0, next-c.f.Rate*maxBetweenMs/1000*c.ch)
		if prev >= 0 {
			lo = max(lo, prev+c.f.Rate*maxJumpMs/1000*c.ch+c.ch)
		}
		for s := lo; s <= next; s += c.ch {
			if rn, ok := try(p - s); ok {
				return rn, true
			}
		}
	}
	// Anywhere else in the stream: the index bits of a test frame's end.
	for j := p; j+32 <= q; j += c.ch {
		k := index(r[j : j+32])
		if k > maxIndex {
			continue
		}
		s := int(k)*c.n + c.n - 32
		if r[j] != c.at(s) {
			continue
		}
		if rn, ok := try(j - s); ok {
			return rn, true
		}
	}
	return run{}, false
}

func (c *streamChecker) check(r []int16) StreamReport {
	rep := StreamReport{Samples: len(r)}
	ms := func(samples int) float64 { return float64(samples) / float64(c.ch) * 1000 / float64(c.f.Rate) }
	runs := c.runs(r)
	// A drift adjustment in the last few samples before a run is cut
	// short (by a replayed buffer, say) cannot show the 8 samples of
	// stream after it that extend wants: take the longest such tail that
	// is the stream through one. Only where the playout buffer is seen
	// adjusting elsewhere in the recording: a ramp's first sample can be
	// the mean of two stream samples by chance.
	for i := range runs {
		if c.adjusted == 0 {
			break
		}
		end := len(r)
		if i+1 < len(runs) {
			end = runs[i+1].a
		}
		for k := min(8*c.ch, end-runs[i].b); k >= c.ch; k -= c.ch {
			if b, d := c.extend(r, runs[i].b, runs[i].b+k, runs[i].dEnd); b == runs[i].b+k {
				runs[i].b, runs[i].dEnd = b, d
				break
			}
		}
	}
	rep.Adjusted = c.adjusted
	// Pass 2: explain what lies between runs. Before a run there may be
	// a fade-in (attenuated stream); after one an underrun fill (the first
	// sample free, then a ramp to zero within the fade window, then zeros
	// for the rest of the period); zeros are silence. A gap holding
	// anything else counts as one bad stretch.
	pos := 0
	prevEnd := -1 // stream position after the furthest run so far
	var heard spans
	for i := 0; i <= len(runs); i++ {
		gapA, gapB := pos, len(r)
		if i < len(runs) {
			gapB = runs[i].a
			d := runs[i].d
			q := gapB
			for q-c.ch >= gapA && q-c.ch-d >= 0 && gapB-(q-c.ch) <= c.window && fadesIn(r[q-c.ch:q], c, q-c.ch-d) {
				q -= c.ch
			}
			for q < gapB && allZero(r[q:q+c.ch]) { // leading zeros are silence, not stream
				q += c.ch
			}
			runs[i].a = q // the fade-in is part of the run
			gapB = q
		}
		if gapA < gapB {
			z := gapA
			if i > 0 { // an underrun ramp right after a run
				p := gapA + c.ch
				for p+c.ch <= min(gapA+c.window, gapB) && ramps(r[p-c.ch:p+c.ch], c.ch) {
					p += c.ch
				}
				// A fill ramps to zero and stays there until its period
				// ends, playing resumes (with a fade-in, but only after a
				// whole ramp), or the recording ends. With drift
				// compensation on, fill need not fill a whole period.
				end := min(gapA+c.n, gapB)
				if p <= end && allZero(r[p:end]) && (end > p || p-gapA >= c.window || end == len(r)) {
					z = end
				}
			}
			// What is left: zeros, stretches the device played before
			// (a replayed stale buffer, fill included), or bad.
			nonzero := 0
			for x := z; x < gapB; {
				if r[x] == 0 {
					x++
					continue
				}
				y, zeros := x, 0
				for y < gapB && zeros < minGap {
					if r[y] == 0 {
						zeros++
					} else {
						zeros = 0
					}
					y++
				}
				y -= zeros
				if i < len(runs) && y == gapB {
					// A piece right before a run that is the stream from
					// earlier on (exact or fading in): what lay between
					// was lost, e.g. a capture overrun inside the first
					// period played after silence. Lost, not bad.
					next := gapB - runs[i].d
					if p, ok := c.earlier(r[x:y], next, prevEnd); ok {
						if prevEnd < 0 {
							rep.First = float64(p) / float64(c.n)
						} else if p > prevEnd {
							rep.LostMs += ms(p - prevEnd)
						}
						rep.GoodMs += ms(y - x)
						rep.Runs++
						heard.add(p, p+y-x)
						prevEnd = p + y - x
						nonzero += y - x
						x = y
						continue
					}
				}
				if c.replayed(r, x, y) {
					rep.Replayed++
				} else if e, ok := c.loneRamp(r, x, gapB); ok && e >= y {
					// Counted as silence (nonzero is not increased).
					rep.LoneRamps++
					x = e
					continue
				} else {
					if len(rep.BadAt) < 8 {
						rep.BadAt = append(rep.BadAt, x)
					}
					rep.Bad++
					rep.BadMs += ms(y - x)
				}
				nonzero += y - x
				x = y
			}
			rep.SilenceMs += ms(gapB - gapA - nonzero)
		}
		if i == len(runs) {
			break
		}
		rn := runs[i]
		start, stop := rn.a-rn.d, rn.b-rn.dEnd
		if prevEnd >= 0 {
			switch {
			case start < prevEnd && (ms(prevEnd-start) <= maxReplayMs || 2*heard.covered(start, min(stop, prevEnd)) >= min(stop, prevEnd)-start):
				rep.Replayed++
			case start < prevEnd:
				rep.OutOfOrder++
			case start > prevEnd:
				rep.LostMs += ms(start - prevEnd)
			}
		} else {
			rep.First = float64(start) / float64(c.n)
		}
		rep.GoodMs += ms(rn.b - rn.a)
		rep.Runs++
		heard.add(start, stop)
		prevEnd = max(prevEnd, stop)
		rep.Last = float64(prevEnd) / float64(c.n)
		pos = rn.b
	}
	return rep
}

// earlier looks for piece in the stream (exact, its first fade window
// possibly attenuated as a fade-in attenuates) ending at most maxJumpMs before stream position next and not
// before after (the end of what was found before it; -1: none), and
// returns where it starts. Pieces under 1 ms are too short to place.
func (c *streamChecker) earlier(piece []int16, next, after int) (int, bool) {
	if len(piece) < c.f.Rate/1000*c.ch || len(piece)%c.ch != 0 {
		return 0, false
	}
	lo := max(0, after, next-c.f.Rate*maxJumpMs/1000*c.ch)
	w := min(c.window, len(piece))
	for p := next - len(piece); p >= lo; p -= c.ch {
		if equalRange(piece[w:], c, p+w) && fadesIn(piece[:w], c, p) {
			return p, true
		}
	}
	return 0, false
}

func allZero(s []int16) bool {
	for _, v := range s {
		if v != 0 {
			return false
		}
	}
	return true
}

// equalRange compares got with the stream from s on.
func equalRange(got []int16, c *streamChecker, s int) bool {
	for j, g := range got {
		if g != c.at(s+j) {
			return false
		}
	}
	return true
}

// equalFrame compares one sample frame (all channels) with the stream at s.
func equalFrame(got []int16, c *streamChecker, s int) bool {
	for j, g := range got {
		if g != c.at(s+j) {
			return false
		}
	}
	return true
}

func fadesIn(got []int16, c *streamChecker, s int) bool {
	for j, g := range got {
		if !attenuated(g, c.at(s+j)) {
			return false
		}
	}
	return true
}

// ramps reports whether the second sample frame of two is the first ramped
// toward zero (audio.Check's underrun fill rule), channel by channel.
func ramps(two []int16, ch int) bool {
	for j := range ch {
		p, v := two[j], two[ch+j]
		if v != 0 && ((v < 0) != (p < 0) || abs32(v) > abs32(p)) {
			return false
		}
	}
	return true
}

// loneRamp reports whether r[x:] begins with the playout buffer's underrun
// ramp, or the last part of one (at least half of it), ending before end:
// from some value v, channel by channel, sample i of the ramp is
// v*(fade-i)/(fade+1) (stream/playout's fill), then zero. It returns where
// the ramp ends. With silence before it, it is a fill block whose stream
// before it the recording lost (a capture overrun, or a sound card ring
// whose earlier period was overwritten before it was played).
func (c *streamChecker) loneRamp(r []int16, x, end int) (int, bool) {
	for i0 := 0; i0 <= c.fade/2; i0++ {
		e := x + (c.fade-i0)*c.ch
		if e > end {
			continue
		}
		ok := true
		for ch := 0; ch < c.ch && ok; ch++ {
			ok = false
			// v*(fade-i0)/(fade+1) truncates toward zero: v lies within
			// one step of the first value scaled back.
			est := int(r[x+ch]) * (c.fade + 1) / (c.fade - i0)
			for v := est - (c.fade+1)/(c.fade-i0) - 1; v <= est+(c.fade+1)/(c.fade-i0)+1 && !ok; v++ {
				if v == 0 || v < -32768 || v > 32767 {
					continue
				}
				ok = true
				for i := i0; i < c.fade; i++ {
					if int(r[x+(i-i0)*c.ch+ch]) != v*(c.fade-i)/(c.fade+1) {
						ok = false
						break
					}
				}
			}
		}
		if ok {
			return e, true
		}
	}
	return 0, false
}

// spans is a set of stream intervals, sorted and merged.
type spans []struct{ a, b int }

func (s *spans) add(a, b int) {
	if a >= b {
		return
	}
	out := (*s)[:0:0]
	for _, v := range *s {
		switch {
		case v.b < a || v.a > b:
			out = append(out, v)
		default:
			a, b = min(a, v.a), max(b, v.b)
		}
	}
	out = append(out, struct{ a, b int }{a, b})
	slices.SortFunc(out, func(x, y struct{ a, b int }) int { return x.a - y.a })
	*s = out
}

// covered returns how much of [a, b) lies within the set.
func (s spans) covered(a, b int) int {
	n := 0
	for _, v := range s {
		n += max(0, min(b, v.b)-max(a, v.a))
	}
	return n
}

// AudioRule is the pass rule of one direction of the audio scenario,
// judged against what the receiving daemon's playout buffer played (its
// own count), not against the call's length: how much audio an emulated
// guest captures, sends and receives in time depends on how fast the
// emulator runs on a machine that may be busy with other work.
type AudioRule struct {
	// MinShare is the least share of PlayedMs that must be good.
	MinShare float64
}

// Check requires a recording (rep) of nothing but the test stream and
// silence, in order: no bad stretch (samples from nowhere, corruption), no
// run out of order and no replay (a sound card playing its stale ring
// after an underrun: the daemon's playback must leave silence there);
// audio lost is counted, not failed. And at least MinShare of the
// playedMs of audio the receiving playout buffer played (its frames played
// times the frame length) must be good.
func (a AudioRule) Check(rep StreamReport, playedMs float64) error {
	switch {
	case rep.Bad != 0 || rep.OutOfOrder != 0:
		return fmt.Errorf("%d bad stretches (%.1f ms) and %d runs out of order, want none", rep.Bad, rep.BadMs, rep.OutOfOrder)
	case rep.Replayed != 0:
		return fmt.Errorf("%d replayed stretches (a sound card played its stale ring again after an underrun), want none", rep.Replayed)
	case playedMs <= 0:
		return fmt.Errorf("the playout buffer played nothing")
	case rep.GoodMs < a.MinShare*playedMs:
		return fmt.Errorf("%.0f ms good of the %.0f ms the playout buffer played (%.0f%%), want ≥ %.0f%%",
			rep.GoodMs, playedMs, 100*rep.GoodMs/playedMs, 100*a.MinShare)
	}
	return nil
}
