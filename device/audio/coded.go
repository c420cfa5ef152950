package audio

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/callbox/callbox/stream/media"
)

// Thresholds of CheckCoded. The figures behind them, measured through
// libopus 1.3.1, are in coded_test.go.
const (
	// readMargin is how much louder (dB) a set's loudest tone must be than
	// its runner-up for the marker to be read as an index on its own: set
	// 0's always, the slower sets' unless the recording keeps them well
	// enough to take them at trustMargin (see trust).
	readMargin = 6.0
	// showMargin is the same for a window that shows the index expected
	// there (the last good one plus one, or the index a jump goes on
	// with): the marker need only agree with it.
	showMargin = 1.0
	// cutBelow is how much weaker (dB) than set 0's the loudest tone of a
	// slower set may be, in a window or over the whole recording (the
	// median), before the set counts as cut off by the codec: narrowband
	// Opus keeps nothing above 4 kHz.
	cutBelow = 12.0
	// minCorr is the least correlation of a window with its test frame for
	// the window to be good.
	minCorr = 0.4
	// maxConceal is the longest run of windows that are neither good nor
	// silence that counts as concealment rather than as bad audio: a
	// playout buffer conceals up to 100 ms (stream/playout.ConcealMax, 10
	// frames of 10 ms), then ramps down in one more window, and the audio
	// after a break splices in one more.
	maxConceal = 12
	// quietLevel is the largest value (-54 dBFS) that counts as silence.
	quietLevel = 64
	// confirmWithin is how many windows after a jump in the index may go on
	// from it, confirming the jump.
	confirmWithin = 2
	// jumpEdge is how much better the audio must match a jump the marker
	// reads than the stream going on, where the windows after it do not
	// settle it, and jumpCorr how well at least.
	jumpEdge = 0.05
	jumpCorr = 0.7
	// trustMargin and trustMisreads: see trust.
	trustMargin   = 3.0
	trustMisreads = 500
	// findSpan is how many windows a search for a full index scores its
	// best findShortlist candidates over, and maxFinds bounds the searches
	// (some 400 frames generated each) in a recording that keeps losing
	// the stream.
	findSpan      = 20
	findShortlist = 8
	maxFinds      = 16
	// maxShiftMs bounds a re-alignment (see CheckCoded): how far the audio
	// after a break may have gone on beyond where the stream going on would
	// have put it: frames dropped at a latency cap, or lost.
	maxShiftMs = 300
	// alignSpan is how many windows from where the grid stopped matching
	// a re-alignment folds to find the frame edges, alignRun how many
	// windows on the new grid must then show the stream going on, and
	// alignCheck over how many (at most) the new grid must match the audio
	// better than the current one.
	alignSpan  = 4
	alignRun   = 3
	alignCheck = 8
)

// CodedReport is what CheckCoded found in a recording.
type CodedReport struct {
	Windows     int     // frame-length windows examined, from Delay on; partial ones at breaks and at the end are ignored
	Good        int     // windows whose marker and content show a test frame
	Silence     int     // near-zero windows, allowing an underrun ramp at their start
	Concealed   int     // windows in short runs of other audio next to good audio: concealment, fades, splices
	ConcealRuns int     // how many such runs
	Bad         int     // everything else
	OutOfOrder  int     // good windows whose index is not greater than every earlier good window's: a stretch played late counts whole
	Repeated    int     // good windows whose index was seen before (also counted in OutOfOrder)
	First       uint32  // index of the first good window; zero if Good is zero
	Last        uint32  // index of the last good window; zero if Good is zero
	Delay       int     // samples per channel before the first window: the codec's delay, modulo a frame
	Breaks      int     // re-alignments after good audio: places where what follows sits at another delay
	WorstCorr   float64 // lowest correlation of a good window with its test frame
	MedianCorr  float64 // median correlation of the good windows
}

func (r CodedReport) String() string {
	return fmt.Sprintf("%d windows at delay %d, %d breaks: %d good (%d..%d, correlation worst %.2f, median %.2f), %d silence, %d concealed in %d runs, %d bad, %d out of order, %d repeated",
		r.Windows, r.Delay, r.Breaks, r.Good, r.First, r.Last, r.WorstCorr, r.MedianCorr, r.Silence, r.Concealed, r.ConcealRuns, r.Bad, r.OutOfOrder, r.Repeated)
}

// CheckCoded checks a recording of the test signal (see TestFrame) that went
// through a lossy codec, in format f (the zero value means
// media.DefaultAudio); stereo is judged on its first channel. A recording
// that went through no codec passes too. Formats below 16 kHz carry no
// marker, and they and an invalid f yield an empty report.
//
// A codec delays the signal and changes its waveform, so the recording is
// first aligned: windows of one frame are placed where the frames' marker
// tones (see marker.go) line up, then moved to where the first frames found
// match best, at Delay samples plus a whole number of frames. Each window is
// then
//
//   - silence, if it is near zero (an underrun ramp may start it);
//   - good, if its marker shows a frame index and the window correlates
//     with that test frame by at least minCorr (the frame as sent or as
//     Opus' speech mode high-passes it, whichever is closer). The marker
//     spells the index modulo its period. A window is expected to go on
//     from the last good one, counting the other windows between but not
//     silence (after an underrun the stream resumes where it stopped), and
//     its marker need only agree with that. Any other index, a jump, is the
//     one nearest the expected; it must read clearly, and is believed only
//     if a window after it goes on from it or the window matches its frame
//     well and better than the expected one: a codec smears a frame's tones
//     into its neighbours, which must not pass for a reordering;
//   - concealed, if it is in a run of at most maxConceal other windows with
//     good audio on one side and good audio, silence or an end of the
//     recording on the other, and no window of the run reads as an index
//     away from those around it: what packet-loss concealment, underrun
//     ramps and the windows across a splice look like;
//   - bad otherwise: any longer run, and a run with a window whose marker
//     reads as an index from elsewhere in the stream.
//
// A receiver may shift what it plays: an underrun inserts concealment and
// silence up to the end of a device period, part of a frame; dropping
// samples removes some. Everything after such a break sits at another
// delay, so each run of good audio is aligned on its own. Wherever a window
// is not good (and at the first good window, since the whole recording's
// alignment may be a later part's), the frame edges of the audio from there
// are found as for the whole recording, over a few windows. If the stream
// goes on there after the last good index (any amount of audio may have
// been inserted), no more than maxShiftMs beyond where it was expected
// (frames dropped), and matches the audio clearly better than the current
// alignment, the windows go on from there: a break, counted in Breaks once
// good audio came before. Windows just before it that match it better go
// over to it too; a partial window at the break is not examined. A
// re-alignment only ever goes on in the stream, so a stretch played again
// or out of order still shows as out of order or bad, and noise or audio
// from elsewhere in the stream as bad.
//
// The codec sets what can be seen. With 20 ms packets and Opus' 6.5 ms
// delay every other window spans two packets, so a reordered packet leaves a
// single clean window; and a frame that differs from its neighbours for only
// 10 ms has the marker's slower digits blurred. Through Opus at 32 kbit/s
// most, not all, of such single faults show (see coded_test.go); longer ones
// do. A codec that keeps only part of the band (narrowband Opus, up to
// 4 kHz) keeps only the fastest digit: the index is then known modulo 5 from
// one window to the next, and a jump of more than two frames is misread.
// It also blurs the frame edges, which a break is aligned by: there a break
// is followed only once they show, to a few samples, and a shift of less
// than a sixtieth of a frame not at all.
//
// The first good window's full index is found from the hum, which repeats
// with its 4 s glide, together with the marker: it is the lowest index that
// fits, exact if the stream's first good window comes within 4.2 min of its
// start (4 s through a narrowband codec). Later indices follow from it. It
// is a pure function.
func CheckCoded(f media.AudioFormat, samples []int16) CodedReport {
	f, err := format(f)
	if err != nil || f.Rate < markerMinRate {
		return CodedReport{}
	}
	return newCoder(f, samples).check()
}

const nSets = len(markerDigits)

// reading is what a window's marker tones say.
type reading struct {
	tone   [nSets]int     // loudest tone of each set
	margin [nSets]float64 // dB it is louder than the set's runner-up
	level  [nSets]float64 // dB it is louder than set 0's loudest
}

// sets is how many of the sets, fastest first, a window's index may be read
// from: those the recording keeps and this window shows.
func (c *coder) sets(r reading) int {
	n := 1
	for n < nSets && c.kept[n] && r.level[n] >= -cutBelow {
		n++
	}
	return n
}

// code reads the index modulo period; ok if the read is clear: set 0 by
// readMargin, the slower sets by c.slow.
func (c *coder) code(r reading) (code, period uint32, ok bool) {
	ok = r.margin[0] >= readMargin
	period = 1
	for s := range c.sets(r) {
		set := markerDigits[s]
		code += set.digit(r.tone[s]) * period
		period *= uint32(set.tones)
		ok = ok && (s == 0 || r.margin[s] >= c.slow)
	}
	return code, period, ok
}

// shows reports whether the marker agrees with index idx.
func (c *coder) shows(r reading, idx uint32) bool {
	for s := range c.sets(r) {
		if r.tone[s] != markerDigits[s].tone(idx) || r.margin[s] < showMargin {
			return false
		}
	}
	return true
}

type coder struct {
	f      media.AudioFormat
	n      int       // samples per channel in a frame
	x      []int16   // the first channel
	d2     []float64 // x's second difference: the tones, little of the hum
	tones  []toneInfo
	kept   [nSets]bool // sets the recording keeps
	slow   float64     // dB a slower set must lead by to be read clearly; see trust
	hp     [3]float64  // Opus' speech high-pass: b0 (b = b0*[1 -2 1]), a1, a2
	frames map[uint32]frameRef
	finds  int
	looks  map[int]look // what the window starting at a sample shows
	e      []float64    // scratch for read
	fold   []float64    // scratch for realign
}

// look is what a window shows: silence, or its marker's reading.
type look struct {
	r      reading
	silent bool
}

type toneInfo struct {
	cos, sin []float64 // over the central half of a frame, divided by the second difference's gain
	ref      []float64 // the tone's second difference over a frame, as above, edges included
}

func newCoder(f media.AudioFormat, samples []int16) *coder {
	c := &coder{f: f, n: f.FrameSamples(), frames: map[uint32]frameRef{}, looks: map[int]look{}}
	c.x = samples
	if f.Channels > 1 {
		c.x = make([]int16, len(samples)/f.Channels)
		for i := range c.x {
			c.x[i] = samples[i*f.Channels]
		}
	}
	// The centred second difference keeps the tones' phase and weakens the
	// hum against them by the square of the frequency ratio: the
	// fundamental by 20 dB or more against the lowest tone.
	c.d2 = make([]float64, len(c.x))
	for i := 1; i+1 < len(c.x); i++ {
		c.d2[i] = float64(c.x[i+1]) - 2*float64(c.x[i]) + float64(c.x[i-1])
	}
	edge := markerEdge(c.n)
	half := c.n / 2
	for _, set := range markerDigits {
		for t := range set.tones {
			w := 2 * math.Pi * float64(set.hz(t)) / float64(f.Rate)
			g := 4 * math.Sin(w/2) * math.Sin(w/2) // the second difference's gain
			ti := toneInfo{cos: make([]float64, half), sin: make([]float64, half), ref: make([]float64, c.n)}
			for j := range half {
				ti.cos[j] = math.Cos(w*float64(j)) / g
				ti.sin[j] = math.Sin(w*float64(j)) / g
			}
			for j := range ti.ref {
				e := float64(min(j, c.n-1-j))
				a := 1.0
				if e < float64(edge) {
					a = (1 - math.Cos(math.Pi*(2*e+1)/float64(2*edge))) / 2
				}
				ti.ref[j] = a * math.Sin(w*float64(j)) / g // the tone is -sin
			}
			c.tones = append(c.tones, ti)
		}
	}
	c.e = make([]float64, len(c.tones))
	c.fold = make([]float64, c.n)
	// opus_encoder.c's hp_cutoff at 100 Hz, the top of its range, where it
	// sits for a voice like the hum.
	fc := 1.5 * math.Pi * 100 / float64(f.Rate)
	r := 1 - 0.92*fc
	c.hp = [3]float64{r, -2 * r * (1 - 0.5*fc*fc), r * r}
	return c
}

// read measures the marker tones in the window starting at a, over its
// central half (so that a quarter frame of misalignment still finds them).
func (c *coder) read(a int, e []float64) reading {
	lo := a + c.n/4
	d := c.d2[lo : lo+c.n/2]
	for i, t := range c.tones {
		re, im := dot(d, t.cos), dot(d, t.sin)
		e[i] = re*re + im*im
	}
	var r reading
	k := 0
	for s, set := range markerDigits {
		es := e[k : k+set.tones]
		k += set.tones
		b, b2 := 0, -1
		for t := range es {
			if es[t] > es[b] {
				b = t
			}
		}
		for t := range es {
			if t != b && (b2 < 0 || es[t] > es[b2]) {
				b2 = t
			}
		}
		r.tone[s] = b
		r.margin[s] = db(es[b], es[b2])
		r.level[s] = db(es[b], e[r.tone[0]])
	}
	return r
}

// db is 10 log10(a/b), defined for zeros.
func db(a, b float64) float64 {
	switch {
	case a == 0:
		return math.Inf(-1)
	case b == 0:
		return math.Inf(1)
	}
	return 10 * math.Log10(a/b)
}

// dot is the dot product, in four chains for speed.
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// isSilence reports whether the window at a is near zero after a ramp
// toward zero within the fade window at its start.
func (c *coder) isSilence(a int) bool {
	w := c.x[a : a+c.n]
	fade := c.f.Rate * fadeMs / 1000
	for _, v := range w[fade:] {
		if abs(v) > quietLevel {
			return false
		}
	}
	for i := 1; i < fade; i++ {
		p, v := abs(w[i-1]), abs(w[i])
		if v > quietLevel && (v > p+quietLevel || (w[i] < 0) != (w[i-1] < 0)) {
			return false
		}
	}
	return true
}

// frameRef is a test frame's first channel, as sent and as Opus' speech
// mode high-passes it.
type frameRef struct{ plain, hp []float64 }

// frame returns test frame idx's first channel (cached).
func (c *coder) frame(idx uint32) []float64 {
	if r, ok := c.frames[idx]; ok {
		return r.plain
	}
	if len(c.frames) >= 1024 { // more than a search needs
		clear(c.frames)
	}
	s := make([]int16, c.f.FrameLen())
	testFrame(c.f, idx, s)
	fr := make([]float64, c.n)
	for j := range fr {
		fr[j] = float64(s[j*c.f.Channels])
	}
	c.frames[idx] = frameRef{plain: fr}
	return fr
}

// ref returns test frame idx, plain and high-passed (cached).
func (c *coder) ref(idx uint32) frameRef {
	fr := c.frame(idx)
	if r := c.frames[idx]; r.hp != nil {
		return r
	}
	// Run the filter over the frame before too, so that it has settled.
	var x1, x2, y1, y2 float64
	b0, a1, a2 := c.hp[0], c.hp[1], c.hp[2]
	hp := make([]float64, c.n)
	for k, src := range [][]float64{c.frame(idx - 1), fr} {
		for j, v := range src {
			y := b0*(v-2*x1+x2) - a1*y1 - a2*y2
			x2, x1, y2, y1 = x1, v, y1, y
			if k == 1 {
				hp[j] = y
			}
		}
	}
	r := frameRef{plain: fr, hp: hp}
	c.frames[idx] = r
	return r
}

// match sums what the correlation of recording windows with test frames
// is made of, against the frames as sent and high-passed.
type match struct{ xx, xy, yy, xyHP, yyHP float64 }

func (m match) plus(o match) match {
	return match{m.xx + o.xx, m.xy + o.xy, m.yy + o.yy, m.xyHP + o.xyHP, m.yyHP + o.yyHP}
}

// corr is the higher of the two correlations: the high-pass of Opus'
// speech mode turns the hum's fundamental by up to 60 degrees, which alone
// takes the correlation of a perfect copy down to 0.8.
func (m match) corr() float64 {
	if m.xx == 0 || m.yy == 0 || m.yyHP == 0 {
		return 0
	}
	return max(m.xy/math.Sqrt(m.xx*m.yy), m.xyHP/math.Sqrt(m.xx*m.yyHP))
}

// match compares the window at a with test frame idx.
func (c *coder) match(a int, idx uint32) match {
	w := c.x[a : a+c.n]
	r := c.ref(idx)
	var m match
	for i, v := range w {
		x := float64(v)
		m.xx += x * x
		m.xy += x * r.plain[i]
		m.yy += r.plain[i] * r.plain[i]
		m.xyHP += x * r.hp[i]
		m.yyHP += r.hp[i] * r.hp[i]
	}
	return m
}

// corr is the correlation of the window at a with test frame idx.
func (c *coder) corr(a int, idx uint32) float64 { return c.match(a, idx).corr() }

// corrRun is the correlation of n windows from a, taken together (so that
// the hum's syllables count too), with the test frames from idx.
func (c *coder) corrRun(a int, idx uint32, n int) float64 {
	var m match
	for i := range n {
		m = m.plus(c.match(a+i*c.n, idx+uint32(i)))
	}
	return m.corr()
}

// align finds Delay. The marker's tones fade out and in at every frame
// boundary, so the tone band's energy, folded over the frame period, dips
// there; the lag near the dip where the tones then read correlate best with
// the recording pins it to the sample.
func (c *coder) align() int {
	fold := make([]float64, c.n)
	for i, v := range c.d2 {
		fold[i%c.n] += v * v
	}
	dip := dip(fold)

	const probe = 100 // windows read
	type seen struct {
		a int
		r reading
	}
	var ss []seen
	e := make([]float64, len(c.tones))
	for a := dip; a+c.n <= len(c.x) && len(ss) < probe; a += c.n {
		if !c.isSilence(a) {
			if r := c.read(a, e); r.margin[0] >= readMargin {
				ss = append(ss, seen{a, r})
			}
		}
	}
	if len(ss) == 0 {
		return 0
	}
	reach := max(c.n/16, 1)
	best, bestScore := dip, math.Inf(-1)
	for lag := -reach; lag <= reach; lag++ {
		var score float64
		for _, s := range ss {
			a := s.a + lag
			if a < 0 || a+c.n > len(c.x) {
				continue
			}
			d := c.d2[a : a+c.n]
			k := 0
			for set := range markerDigits {
				if set == 0 || s.r.level[set] >= -cutBelow {
					score += dot(d, c.tones[k+s.r.tone[set]].ref)
				}
				k += markerDigits[set].tones
			}
		}
		if score > bestScore {
			best, bestScore = dip+lag, score
		}
	}
	return ((best % c.n) + c.n) % c.n
}

// dip is where the tone band's energy folded over the frame period, fold,
// smoothed over a marker edge circularly, is least: a frame boundary.
func dip(fold []float64) int {
	n := len(fold)
	h := max(markerEdge(n), 1) / 2
	// sum[i] is the sum of fold from -h to i-h-1, circularly.
	sum := make([]float64, n+2*h+2)
	for i := 1; i < len(sum); i++ {
		sum[i] = sum[i-1] + fold[((i-1-h)%n+n)%n]
	}
	at, least := 0, math.Inf(1)
	for j := range n {
		if s := sum[j+2*h+1] - sum[j]; s < least {
			at, least = j, s
		}
	}
	return at
}

// Window kinds.
const (
	kindOther = iota
	kindGood
	kindSilence
)

// readAll reads the marker of every window from delay on, and judges which
// sets the recording keeps, over all of it: a set whose loudest tone is
// mostly far below set 0's is cut off.
func (c *coder) readAll(delay int) ([]reading, []bool) {
	nw := 0
	if len(c.x) >= delay+c.n {
		nw = (len(c.x) - delay) / c.n
	}
	reads := make([]reading, nw)
	silent := make([]bool, nw)
	e := make([]float64, len(c.tones))
	var levels [nSets][]float64
	for w := range nw {
		a := delay + w*c.n
		if silent[w] = c.isSilence(a); !silent[w] {
			reads[w] = c.read(a, e)
			for s := range nSets {
				levels[s] = append(levels[s], reads[w].level[s])
			}
		}
	}
	c.kept[0] = true
	for s := 1; s < nSets; s++ {
		c.kept[s] = false
		if len(levels[s]) > 0 {
			slices.Sort(levels[s])
			c.kept[s] = c.kept[s-1] && levels[s][len(levels[s])/2] >= -cutBelow
		}
	}
	c.slow = c.trust(reads, silent)
	return reads, silent
}

// trust is the margin at which the slower digits are believed: trustMargin
// if the recording misreads them that clearly in at most one in
// trustMisreads of the pairs of windows whose fastest digit steps by one
// within a group of five (so that set 1 should read the same in both), else
// readMargin. A codec blurs a slower digit that changes for a single frame,
// so that a frame from elsewhere in the stream, or a reordered packet, often
// reads clearly only in the fastest; whether the blurred digits can be taken
// at less depends on how well the codec keeps them, on its bit rate.
func (c *coder) trust(reads []reading, silent []bool) float64 {
	const least = 100 // pairs to judge by
	five := uint32(markerDigits[0].tones)
	pairs, misread := 0, 0
	for w := 0; w+1 < len(reads); w++ {
		a, b := reads[w], reads[w+1]
		if silent[w] || silent[w+1] || a.margin[0] < readMargin || b.margin[0] < readMargin ||
			c.sets(a) < 2 || c.sets(b) < 2 {
			continue
		}
		da, db := markerDigits[0].digit(a.tone[0]), markerDigits[0].digit(b.tone[0])
		if db != (da+1)%five || db == 0 {
			continue
		}
		pairs++
		if a.tone[1] != b.tone[1] && min(a.margin[1], b.margin[1]) >= trustMargin {
			misread++
		}
	}
	if pairs < least || misread*trustMisreads > pairs {
		return readMargin
	}
	return trustMargin
}

// showsAt reports whether window w shows index idx.
func (c *coder) showsAt(reads []reading, silent []bool, w int, idx uint32) bool {
	return w < len(reads) && !silent[w] && c.shows(reads[w], idx)
}

// refine moves the delay to where the first run of test frames, its index
// found, correlates best with the hum and the marker together: the tones
// alone can lock onto a sidelobe a few samples off when the codec keeps
// only the fastest digit.
func (c *coder) refine(delay int, reads []reading, silent []bool) (int, bool) {
	for w := range reads {
		code, period, ok := c.code(reads[w])
		if silent[w] || !ok || w+findSpan > len(reads) ||
			!c.showsAt(reads, silent, w+1, code+1) || !c.showsAt(reads, silent, w+2, code+2) {
			continue
		}
		a := delay + w*c.n
		idx, ok := c.find(a, code, period, 0, false, findSpan)
		if !ok {
			return delay, false
		}
		reach := max(c.n/12, 1)
		best, bestCorr := 0, math.Inf(-1)
		for lag := -reach; lag <= reach; lag++ {
			if a+lag < 0 || a+lag+findSpan*c.n > len(c.x) {
				continue
			}
			if r := c.corrRun(a+lag, idx, findSpan); r > bestCorr {
				best, bestCorr = lag, r
			}
		}
		return ((delay+best)%c.n + c.n) % c.n, true
	}
	return delay, false
}

type window struct {
	kind int
	idx  uint32  // good: the index
	pos  int     // the first sample (per channel)
	rho  float64 // good: the correlation with test frame idx
}

// look returns what the window starting at sample p shows (cached).
func (c *coder) look(p int) look {
	if l, ok := c.looks[p]; ok {
		return l
	}
	var l look
	if l.silent = c.isSilence(p); !l.silent {
		l.r = c.read(p, c.e)
	}
	c.looks[p] = l
	return l
}

// showsPos reports whether the window starting at sample p shows index idx.
func (c *coder) showsPos(p int, idx uint32) bool {
	if p < 0 || p+c.n > len(c.x) {
		return false
	}
	l := c.look(p)
	return !l.silent && c.shows(l.r, idx)
}

func (c *coder) check() CodedReport {
	delay := c.align()
	reads, silent := c.readAll(delay)
	if d, ok := c.refine(delay, reads, silent); ok && d != delay {
		delay = d
		reads, silent = c.readAll(delay)
	}
	for w := range reads {
		c.looks[delay+w*c.n] = look{reads[w], silent[w]}
	}

	var (
		wins   []window
		last   uint32
		have   bool
		since  int // windows of audio since the last good one
		breaks int
		floor  int // the current alignment's first window
		from   int // the first sample a re-alignment may be sought at
	)
	for p := delay; p+c.n <= len(c.x); {
		w := c.classify(p, last, have, since)
		// Where the windows stop matching, and at the first good window:
		// the whole recording's alignment may be another part's.
		first := !have && w.kind == kindGood
		if (w.kind == kindOther || first) && p >= from {
			want := last + 1 + uint32(since)
			if first {
				want = w.idx
			}
			if al, ok := c.realign(p, last, have, want, have || first); ok {
				k, next := 0, al.q%c.n // before any good audio: from the start
				if have {
					k, next = c.backtrack(wins, floor, al, p)
				}
				wins = wins[:k]
				last, have, since = resume(wins)
				if have {
					breaks++
					// The stream goes on at the frame the new grid
					// puts there.
					at := int64(al.idx) + int64((next-al.q)/c.n)
					since = int(max(0, at-int64(last)-1))
				}
				floor, from, p = k, al.q+alignRun*c.n, next
				continue
			}
		}
		wins = append(wins, w)
		switch w.kind {
		case kindGood:
			last, have, since = w.idx, true, 0
		case kindOther:
			since++
		}
		p += c.n
	}

	rep := CodedReport{Windows: len(wins), Delay: delay, Breaks: breaks}
	if len(wins) > 0 {
		rep.Delay = wins[0].pos
	}
	var corrs []float64
	seen := map[uint32]bool{}
	var highest uint32
	for _, w := range wins {
		switch w.kind {
		case kindSilence:
			rep.Silence++
		case kindGood:
			corrs = append(corrs, w.rho)
			if rep.Good > 0 && w.idx <= highest {
				rep.OutOfOrder++
			}
			highest = max(highest, w.idx)
			if seen[w.idx] {
				rep.Repeated++
			}
			if rep.Good == 0 {
				rep.First = w.idx
			}
			seen[w.idx] = true
			rep.Good++
			rep.Last = w.idx
		}
	}
	if len(corrs) > 0 {
		slices.Sort(corrs)
		rep.WorstCorr = corrs[0]
		rep.MedianCorr = corrs[len(corrs)/2]
	}
	c.runs(wins, &rep)
	return rep
}

// resume is where the stream stands after wins: the last good window's
// index, whether there is one, and how many windows of audio came since.
func resume(wins []window) (last uint32, have bool, since int) {
	for i := len(wins) - 1; i >= 0; i-- {
		switch wins[i].kind {
		case kindGood:
			return wins[i].idx, true, since
		case kindOther:
			since++
		}
	}
	return 0, false, since
}

// classify judges the window starting at sample p, the stream having last
// shown index last (if have) and since windows of audio having come after
// it; see CheckCoded.
func (c *coder) classify(p int, last uint32, have bool, since int) window {
	l := c.look(p)
	if l.silent {
		return window{kind: kindSilence, pos: p}
	}
	n := c.n
	shows := func(k int, idx uint32) bool { return c.showsPos(p+k*n, idx) }
	// confirmed reports whether a window after this one goes on from
	// index idx.
	confirmed := func(idx uint32) bool {
		for k := 1; k <= confirmWithin; k++ {
			if shows(k, idx+uint32(k)) {
				return true
			}
		}
		return false
	}
	// believe reports whether the window, read clearly as idx rather than
	// the expected want, starts a jump: if a window after it goes on from
	// it, or if its audio matches frame idx better than frame want by
	// jumpEdge (with 20 ms packets and Opus' 6.5 ms delay a reordered packet
	// leaves a single clean window, the next being a splice). If only
	// slower digits differ, the next two windows must go on from it and the
	// audio match the jump better over the three: a codec's smear of a slow
	// digit can last some windows.
	believe := func(want, idx uint32) bool {
		if markerDigits[0].tone(idx) != markerDigits[0].tone(want) {
			if confirmed(idx) {
				return true
			}
			r := c.corr(p, idx)
			return r >= jumpCorr && r >= c.corr(p, want)+jumpEdge
		}
		const k = 3
		return p+k*n <= len(c.x) && shows(1, idx+1) && shows(2, idx+2) &&
			c.corrRun(p, idx, k) >= c.corrRun(p, want, k)+jumpEdge
	}

	r := l.r
	var idx uint32
	rho := -1.0
	code, period, readOK := c.code(r)
	// The stream goes on with the audio between, not with silence:
	// after an underrun the playout resumes where it stopped.
	want := last + 1 + uint32(since)
	switch {
	case have && c.shows(r, want):
		idx = want
		rho = c.corr(p, idx)
	case have && readOK:
		idx = nearest(want, code, period)
		if believe(want, idx) {
			rho = c.corr(p, idx)
		}
	}
	if rho < minCorr && readOK && (!have || code != want%period) &&
		shows(1, code+1) && shows(2, code+2) && c.finds < maxFinds {
		// The first window, or one after a break the marker cannot
		// bridge: find the full index from the hum.
		if got, ok := c.find(p, code, period, want, have, min(findSpan, (len(c.x)-p)/n)); ok {
			idx = got
			rho = c.corr(p, idx)
		}
	}
	// Loss concealment continues the last audio it decoded, tones and
	// all: a window that reads as the last good frame again is
	// concealment going on, not that frame played twice. (A replay of
	// just the last 10 ms cannot be told from it through a codec;
	// PCM's exact check still sees one. A repeated 20 ms packet reads
	// as the frame before the last first, and is caught.)
	if have && idx == last && rho < jumpCorr {
		rho = -1
	}
	if rho < minCorr {
		return window{kind: kindOther, pos: p}
	}
	return window{kind: kindGood, idx: idx, pos: p, rho: rho}
}

// alignment places test frame idx at sample q, and so every frame: frame
// idx+j at q+j*n.
type alignment struct {
	q   int
	idx uint32
}

// realign looks for a new alignment for the audio from the window at
// sample a on, which does not match the current one: after an underrun's
// fill or dropped samples what follows sits at another delay. If expect,
// want is the index the current alignment puts at a. Where the stream has
// shown index last (have), the new alignment must go on after last, and
// place the stream no more than maxShiftMs beyond where want puts it;
// before, the hum finds the index (see find). It folds the tone band over alignSpan
// windows from a for the frame edges, reads the marker there and pins the
// edges to the sample with the tones and then the hum, as align and refine
// do for the whole recording. The alignment found must show the stream
// going on over alignRun windows, each showing its index and correlating
// by minCorr, and match the audio over up to alignCheck windows by
// jumpCorr, and by jumpEdge better than the current alignment does.
func (c *coder) realign(a int, last uint32, have bool, want uint32, expect bool) (alignment, bool) {
	n := c.n
	if a+(alignSpan+1)*n > len(c.x) {
		return alignment{}, false
	}
	clear(c.fold)
	for i := a; i < a+alignSpan*n; i++ {
		v := c.d2[i]
		c.fold[(i-a)%n] += v * v
	}
	q := a + dip(c.fold)
	var rs [alignRun]reading
	for k := range rs {
		l := c.look(q + k*n)
		if l.silent {
			return alignment{}, false
		}
		rs[k] = l.r
	}
	code, period, ok := c.code(rs[0])
	if !ok {
		return alignment{}, false
	}
	for k := 1; k < alignRun; k++ {
		if !c.shows(rs[k], code+uint32(k)) {
			return alignment{}, false
		}
	}
	// The tones rise and fall at the frame edges.
	reach := max(n/16, 1)
	lag, most := 0, math.Inf(-1)
	for l := -reach; l <= reach; l++ {
		if q+l < 0 {
			continue
		}
		var score float64
		for k, r := range rs {
			d := c.d2[q+l+k*n : q+l+(k+1)*n]
			t := 0
			for s, set := range markerDigits {
				if s == 0 || r.level[s] >= -cutBelow {
					score += dot(d, c.tones[t+r.tone[s]].ref)
				}
				t += set.tones
			}
		}
		if score > most {
			lag, most = l, score
		}
	}
	q += lag

	// The windows both alignments are compared over.
	m := min(alignCheck, (len(c.x)-q-n)/n)
	if m < alignRun {
		return alignment{}, false
	}

	// The index: among those the marker allows, the one the hum matches
	// best. After good audio, the stream may have resumed where it
	// stopped, or gone on (frames lost) up to maxShiftMs beyond where the
	// current alignment puts it. Before, the hum's own.
	var cands []uint32
	if have {
		shift := c.f.Rate * maxShiftMs / 1000
		lo := int64(last) + 1
		hi := int64(want) + int64(floorDiv(q-a+shift, n))
		per := int64(period)
		for i := lo + ((int64(code)-lo)%per+per)%per; i <= hi; i += per {
			cands = append(cands, uint32(i))
		}
	} else if c.finds < maxFinds {
		if i, ok := c.find(q, code, period, 0, false, min(findSpan, (len(c.x)-q)/n)); ok {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		return alignment{}, false
	}
	idx, best := cands[0], math.Inf(-1)
	for _, i := range cands {
		if r := c.corrRun(q, i, m); r > best {
			idx, best = i, r
		}
	}
	// The tones alone can lock onto a sidelobe a few samples off, or,
	// blurred by a narrowband codec, further: the hum, coarsely, then to
	// the sample.
	step := max(n/160, 1)
	lag, best = 0, math.Inf(-1)
	for _, span := range [2][2]int{{reach, step}, {step - 1, 1}} {
		at := lag
		for l := at - span[0]; l <= at+span[0]; l += span[1] {
			if q+l < 0 || q+l+(m+1)*n > len(c.x) {
				continue
			}
			if r := c.corrRun(q+l, idx, m); r > best {
				lag, best = l, r
			}
		}
	}
	q += lag

	d := ((q-a)%n + n) % n // how far the new grid lies after the current one
	if !c.kept[1] && min(d, n-d) < max(n/60, 1) {
		// Through a narrowband codec the edges are known to a few
		// samples only, and so little costs little there.
		return alignment{}, false
	}
	if d == 0 || best < jumpCorr {
		return alignment{}, false
	}
	for k := range alignRun {
		i := idx + uint32(k)
		if !c.showsPos(q+k*n, i) || c.corr(q+k*n, i) < minCorr {
			return alignment{}, false
		}
	}
	// The same audio at the current alignment: the window there nearest,
	// showing what the current alignment expects, or the frames around
	// idx.
	cur := q - d
	if d > n/2 {
		cur += n
	}
	is := []int64{int64(idx) - 1, int64(idx), int64(idx) + 1}
	if expect {
		is = append(is, int64(want)+int64((cur-a)/n))
	}
	curBest := -1.0
	for _, i := range is {
		if i >= 0 && cur+m*n <= len(c.x) {
			curBest = max(curBest, c.corrRun(cur, uint32(i), m))
		}
	}
	if best < curBest+jumpEdge {
		return alignment{}, false
	}
	return alignment{q: q, idx: idx}, true
}

// backtrack finds where a new alignment al, found from the window at
// sample p, took over: a break shows only once windows stop matching, and
// the windows before that (of the current alignment, wins[floor:]) may
// already match the new one better. Going back from p, each window that
// the nearest window of al shows, correlates with by minCorr and, if it was
// good, with the same index and better, goes over. It returns how many of
// wins stay and where the first window on al starts: the first one at or
// after p if none went over.
func (c *coder) backtrack(wins []window, floor int, al alignment, p int) (int, int) {
	n := c.n
	k0, next := len(wins), al.q+ceilDiv(p-al.q, n)*n
	for k := len(wins) - 1; k >= floor; k-- {
		old := wins[k]
		if old.kind == kindSilence {
			break
		}
		j := floorDiv(old.pos-al.q+n/2, n)
		q, i := al.q+j*n, int64(al.idx)+int64(j)
		if q < 0 || q+n > len(c.x) || i < 0 {
			break
		}
		if last, have, _ := resume(wins[:k]); have && uint32(i) <= last {
			break
		}
		if !c.showsPos(q, uint32(i)) {
			break
		}
		rho := c.corr(q, uint32(i))
		if rho < minCorr || old.kind == kindGood && (old.idx != uint32(i) || rho <= old.rho) {
			break
		}
		k0, next = k, q
	}
	return k0, next
}

// floorDiv and ceilDiv divide rounding down and up.
func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int) int { return -floorDiv(-a, b) }

// runs classifies the runs of other windows as concealed or bad.
func (c *coder) runs(wins []window, rep *CodedReport) {
	for w := 0; w < len(wins); {
		if wins[w].kind != kindOther {
			w++
			continue
		}
		end := w
		for end < len(wins) && wins[end].kind == kindOther {
			end++
		}
		n := end - w
		before := w > 0 && wins[w-1].kind == kindGood
		after := end < len(wins) && wins[end].kind == kindGood
		ok := n <= maxConceal && (before || after)
		for x := w; ok && x < end; x++ {
			// The indices expected here: the stream going on from the
			// good audio before, or leading to the good audio after.
			var want []uint32
			if before {
				// Concealment repeats the last frame's tones.
				want = append(want, wins[w-1].idx+uint32(x-w+1), wins[w-1].idx)
			}
			if after {
				want = append(want, wins[end].idx-uint32(end-x))
			}
			ok = c.explained(c.look(wins[x].pos).r, want)
		}
		if ok {
			rep.Concealed += n
			rep.ConcealRuns++
		} else {
			rep.Bad += n
		}
		w = end
	}
}

// explained reports whether a window in a short run fits the stream around
// it. It does unless its marker reads as an index more than two frames from
// each expected one, with more than one digit unlike those of the frames
// within two of it: a codec smears a neighbour's tones into a window, or
// misreads a digit.
func (c *coder) explained(r reading, want []uint32) bool {
	code, period, ok := c.code(r)
	if !ok {
		return true
	}
	for _, e := range want {
		if absDiff(nearest(e, code, period), e) <= 2 {
			return true
		}
		differ := 0
		for s := range c.sets(r) {
			near := false
			for d := -2; d <= 2; d++ {
				near = near || r.tone[s] == markerDigits[s].tone(e+uint32(d))
			}
			if !near {
				differ++
			}
		}
		if differ <= 1 {
			return true
		}
	}
	return false
}

// nearest is the index closest to want that is code modulo period, and not
// before the stream's start.
func nearest(want, code, period uint32) uint32 {
	d := (code%period + period - want%period) % period // want+d is code modulo period
	if d > period/2 && want >= period-d {
		return want + d - period
	}
	return want + d
}

// find searches the full index of the window at a, whose marker reads code
// modulo period. The candidates cover one cycle of what the hum and the
// marker together repeat: beyond that the signal is the same to within a few
// hundredths of a turn of the fundamental's phase. They are scored by their
// correlation with the window and the one after it, and the best few again
// over findSpan windows, long enough for the hum's glide to tell apart
// candidates a few frames apart. Among those that score as well as the best,
// to within a margin, it takes the lowest, or, when near is set, the
// repetition nearest hint.
func (c *coder) find(a int, code, period, hint uint32, near bool, windows int) (uint32, bool) {
	c.finds++
	glide := uint32(2*glideRiseSec*1000) / uint32(c.f.FrameMs) // frames per glide
	cycle := lcm(period, glide)
	type cand struct {
		idx   uint32
		score float64
	}
	score := func(idx uint32, n int) float64 { return c.corrRun(a, idx, n) }
	// The stream may go on past frames it lost or dropped, but by no more
	// than maxShiftMs at a time: an index further ahead of the hint is
	// audio from elsewhere, however well the hum happens to fit it.
	ahead := uint32(maxShiftMs / c.f.FrameMs)
	var cs []cand
	for idx := code; idx < cycle; idx += period {
		if near && nearest(hint, idx, cycle) > hint+ahead {
			continue
		}
		cs = append(cs, cand{idx, score(idx, min(2, windows))})
	}
	slices.SortStableFunc(cs, func(x, y cand) int { return cmp.Compare(y.score, x.score) })
	if near {
		// Two windows are little to go by: keep the hint's own candidate.
		h := nearest(hint, code, period) % cycle
		if i := slices.IndexFunc(cs, func(x cand) bool { return x.idx == h }); i >= findShortlist {
			cs[findShortlist-1] = cs[i]
		}
	}
	cs = cs[:min(len(cs), findShortlist)]
	for i := range cs {
		cs[i].score = score(cs[i].idx, windows)
	}
	best := -1.0
	for _, x := range cs {
		best = max(best, x.score)
	}
	if best < minCorr {
		return 0, false
	}
	// Near the hint, a worse score is taken for noise sooner.
	margin := 0.02
	if near {
		margin = 0.1
	}
	var pick uint32
	found := false
	for _, x := range cs {
		if x.score < best-margin {
			continue
		}
		k := x.idx
		if near {
			k = nearest(hint, x.idx, cycle)
		}
		if !found || near && absDiff(k, hint) < absDiff(pick, hint) || !near && k < pick {
			pick, found = k, true
		}
	}
	return pick, found
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

func lcm(a, b uint32) uint32 {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}
