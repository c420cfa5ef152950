// Package echo is the processing stage on the microphone path: it takes
// out of what the microphone hears the far end that our own loudspeaker
// played (acoustic echo cancellation, with the playback-to-capture delay
// found and tracked by GCC-PHAT in Go), suppresses the echo left over and
// the background noise, evens out the level (AGC), and, when the
// canceller cannot get the echo low enough, falls back to ducking the
// microphone while the far end talks (half duplex).
//
// The canceller, suppressors and AGC are speexdsp's, through cgo in a
// leaf file; a build without cgo has only the pass-through and ducking
// and says "compiled without echo cancellation" when asked for more. The
// stage runs at 16 kHz inside a 48 kHz (or 32 kHz) path, with its own
// resampler.
package echo

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// Config chooses the parts of the stage. Default turns them all on.
type Config struct {
	Format   media.AudioFormat // mono; 16, 32 or 48 kHz (zero: media.DefaultAudio)
	Cancel   bool              // acoustic echo cancellation against what the speaker played
	Suppress bool              // residual echo suppression (needs Cancel)
	Denoise  bool              // noise suppression
	AGC      bool              // automatic gain control
	Duck     bool              // half duplex while the canceller is short of DuckBelow
	// Tail is how long an echo the canceller models after the direct
	// path (the room's reverberation): 50–500 ms, default 200 ms.
	Tail time.Duration
	// MaxDelay is the longest playback-to-capture delay searched (device
	// buffers and the air): 50 ms – 1 s, default 500 ms.
	MaxDelay time.Duration
	// DuckBelow is the echo return loss enhancement, in dB, under which
	// the microphone is ducked while the far end talks (default 20).
	DuckBelow float64
}

// Default is every part on, at 48 kHz.
func Default() Config {
	return Config{Format: media.DefaultAudio, Cancel: true, Suppress: true, Denoise: true, AGC: true, Duck: true,
		Tail: 200 * time.Millisecond, MaxDelay: 500 * time.Millisecond, DuckBelow: 20}
}

// Validate says what is wrong with c.
func (c Config) Validate() error {
	f := c.Format
	if f == (media.AudioFormat{}) {
		f = media.DefaultAudio
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if c.Bypass() {
		return nil
	}
	switch {
	case f.Channels != 1:
		return fmt.Errorf("echo: %d channels: the stage is mono", f.Channels)
	case f.Rate%procRate != 0:
		return fmt.Errorf("echo: rate %d: the stage needs 16000, 32000 or 48000", f.Rate)
	case c.Tail < 50*time.Millisecond || c.Tail > 500*time.Millisecond:
		return fmt.Errorf("echo: tail %v out of 50–500 ms", c.Tail)
	case c.MaxDelay < 50*time.Millisecond || c.MaxDelay > time.Second:
		return fmt.Errorf("echo: max delay %v out of 50 ms – 1 s", c.MaxDelay)
	case c.Duck && (c.DuckBelow < 0 || c.DuckBelow > 60 || math.IsNaN(c.DuckBelow)):
		return fmt.Errorf("echo: duck below %v dB out of 0–60", c.DuckBelow)
	case c.Suppress && !c.Cancel:
		return errors.New("echo: residual echo suppression needs the canceller")
	}
	return nil
}

// Bypass says whether c leaves the microphone untouched.
func (c Config) Bypass() bool { return !c.Cancel && !c.Suppress && !c.Denoise && !c.AGC && !c.Duck }

// needsDSP says whether c needs speexdsp.
func (c Config) needsDSP() bool { return c.Cancel || c.Suppress || c.Denoise || c.AGC }

// procRate is the rate the stage works at.
const procRate = 16000

// margin is how far ahead of the estimated delay the canceller's
// reference starts, so that an estimate a little late, or a delay that
// drifts, still leaves the direct path inside the filter.
const margin = 20 * time.Millisecond

// engine is the canceller and preprocessor (speexdsp with cgo).
type engine interface {
	cancel(rec, play, out []int16)
	preprocess(x []int16)
	close()
}

type dspOptions struct {
	frame, filter, rate       int
	cancel, suppress, denoise bool
	agc                       bool
	noiseDB, echoDB           int
	echoActiveDB, agcMaxDB    int
	agcUpDB, agcDownDB        int // dB/s
	agcLevel                  float64
}

// Stats is what the stage has seen and done.
type Stats struct {
	Frames       uint64        // capture frames processed
	DelayKnown   bool          // the playback-to-capture delay has been found
	Delay        time.Duration // the delay in use
	DelayChanges uint64        // times the delay in use was found or moved
	ERLE         float64       // the echo return loss enhancement the stage reaches, dB (long-term estimate)
	Duck         float64       // the attenuation ducking applied to the last frame, dB
	DuckedFrames uint64        // frames ducked by 1 dB or more
}

// Stage processes the microphone against what the speaker played. Played
// and Process may be called from different goroutines (the speaker's
// device thread and the capture loop); Process from one at a time.
type Stage struct {
	cfg    Config
	m      int // the format's rate over procRate
	frame  int // samples per frame at procRate
	block  int // samples per speexdsp call at procRate (5 ms)
	bypass bool

	mu      sync.Mutex // guards the reference, its decimator, stats and closed
	refDec  *decimator
	ref     []float64 // ring of procRate reference samples
	refN    int64     // reference samples written
	ref4    []float64 // ring of estRate reference samples
	ref4N   int64
	refTmp  []float64 // Played's scratch (under mu)
	refProc []float64 // Process's copy of the reference that lines up (under pmu)
	stats   Stats
	closed  bool
	gen     uint64     // Restart calls; the capture side starts over when it sees a new one
	pmu     sync.Mutex // guards the capture side (one Process at a time) and dsp
	seen    uint64     // the gen the capture side last started over at
	dspOpts dspOptions
	dsp     engine
	micDec  *decimator
	up      *interpolator
	est     *delayEstimator
	mic4    []float64 // ring of estRate capture samples
	micN    int64     // procRate capture samples processed
	mic4N   int64
	delay   int // procRate samples between played and heard, in use
	sinceEs int // frames since the last estimate
	every   int // frames between estimates
	// buffers, one frame at procRate
	micF   []float64
	rec    []int16
	play   []int16
	out    []int16
	outF   []float64
	estMic []float64
	estRef []float64
	// ducking and the online ERLE estimate
	pm, po   float64 // smoothed powers of capture and output while the far end talks
	erle     float64 // dB
	inst     float64 // dB: the ERLE over the last few hundred ms of far-end talk
	farHold  int     // frames the far end counts as talking after its reference goes quiet
	duckGain float64
}

// New makes a stage. A config that needs speexdsp in a build without cgo
// is an error that says so.
func New(c Config) (*Stage, error) {
	if c.Format == (media.AudioFormat{}) {
		c.Format = media.DefaultAudio
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Stage{cfg: c, bypass: c.Bypass(), duckGain: 1}
	if s.bypass {
		return s, nil
	}
	s.m = c.Format.Rate / procRate
	s.frame = c.Format.FrameSamples() / s.m
	s.block = procRate / 200
	maxLag := int(c.MaxDelay.Seconds() * procRate)
	s.ref = make([]float64, maxLag+2*procRate)
	s.ref4 = make([]float64, (maxLag+2*procRate)/4)
	s.refDec = newDecimator(s.m, c.Format.Rate, c.Format.FrameSamples())
	s.micDec = newDecimator(s.m, c.Format.Rate, c.Format.FrameSamples())
	s.up = newInterpolator(s.m, c.Format.Rate, s.frame)
	s.mic4 = make([]float64, estRate*2)
	est, err := newDelayEstimator(maxLag / (procRate / estRate))
	if err != nil {
		return nil, err
	}
	s.est = est
	s.every = max(1, 250/c.Format.FrameMs) // an estimate every 250 ms
	s.refTmp, s.refProc = make([]float64, s.frame), make([]float64, s.frame)
	s.micF, s.outF = make([]float64, s.frame), make([]float64, s.frame)
	s.rec, s.play, s.out = make([]int16, s.frame), make([]int16, s.frame), make([]int16, s.frame)
	s.estMic = make([]float64, est.win)
	s.estRef = make([]float64, est.win+est.maxLag)
	if c.needsDSP() {
		tail := int((c.Tail + margin).Seconds() * procRate)
		s.dspOpts = dspOptions{
			frame: s.block, filter: (tail + s.block - 1) / s.block * s.block, rate: procRate,
			cancel: c.Cancel, suppress: c.Suppress, denoise: c.Denoise, agc: c.AGC,
			// Noise down by up to 25 dB, residual echo by 45 (15 while
			// the near end talks); the AGC aims a little above the
			// talker's usual level, at most +12 dB, and moves slowly
			// (3 dB/s up, 6 down) so that it does not pump.
			noiseDB: -25, echoDB: -45, echoActiveDB: -15,
			agcLevel: 6000, agcMaxDB: 12, agcUpDB: 3, agcDownDB: 6,
		}
		d, err := newSpeex(s.dspOpts)
		if err != nil {
			return nil, err
		}
		s.dsp = d
	}
	return s, nil
}

// Restart starts the stage over: for when the speaker or the microphone
// is (re)opened. The stage lines the two up by counting samples from a
// common start, so a device that stopped while the other ran (or both
// stopped and started again at different moments) would leave the
// reference off by however long that was. After Restart both counts
// start again from now: the reference played so far is forgotten at
// once, and the capture side (its resamplers, the delay found, the
// canceller's filter, the ERLE and ducking) starts over at its next
// Process, as a new stage would. Frames, DelayChanges and DuckedFrames
// keep counting. Any goroutine may call it; it does not wait for
// Process.
func (s *Stage) Restart() {
	if s.bypass {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.gen++
	clear(s.ref)
	clear(s.ref4)
	s.refN, s.ref4N = 0, 0
	s.refDec = newDecimator(s.m, s.cfg.Format.Rate, s.cfg.Format.FrameSamples())
	s.stats.DelayKnown = false
	s.stats.Delay = 0
	s.stats.ERLE = 0
	s.stats.Duck = 0
}

// startOver resets the capture side after a Restart; pmu held.
func (s *Stage) startOver() {
	f := s.cfg.Format
	s.micDec = newDecimator(s.m, f.Rate, f.FrameSamples())
	s.up = newInterpolator(s.m, f.Rate, s.frame)
	clear(s.mic4)
	s.micN, s.mic4N = 0, 0
	s.delay, s.sinceEs = 0, 0
	s.est.known, s.est.cur, s.est.cand, s.est.hits, s.est.atCur = false, 0, 0, 0, 0
	s.pm, s.po, s.erle, s.inst, s.farHold, s.duckGain = 0, 0, 0, 0, 0, 1
	if s.dsp != nil {
		// A fresh canceller: the old one's filter models the echo path
		// at the old alignment.
		if d, err := newSpeex(s.dspOpts); err == nil {
			s.dsp.close()
			s.dsp = d
		}
	}
}

// Available says whether this build can cancel echo (it has speexdsp).
func Available() bool { return speexAvailable }

// Config is the stage's configuration, defaults filled in.
func (s *Stage) Config() Config { return s.cfg }

// Latency is what the stage adds to the microphone path: its resampling
// filters and, when speexdsp's preprocessor runs, the one 5 ms block it
// holds back.
func (s *Stage) Latency() time.Duration {
	if s.bypass {
		return 0
	}
	var d time.Duration
	if s.m > 1 {
		taps := 24 * s.m // both filters, (taps-1)/2 each at the format's rate
		d = time.Duration(float64(taps-1) / float64(s.cfg.Format.Rate) * float64(time.Second))
	}
	if s.cfg.Suppress || s.cfg.Denoise || s.cfg.AGC {
		d += 5 * time.Millisecond
	}
	return d
}

// Played hands the stage what the speaker was given to play: the
// canceller's reference. Call it for every period, silence included,
// from the speaker's thread; it does not block on the capture side.
func (s *Stage) Played(frame []int16) {
	if s.bypass {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	n := s.cfg.Format.FrameSamples()
	for len(frame) >= n {
		s.refDec.run(frame[:n], s.refTmp)
		for i, v := range s.refTmp {
			s.ref[(s.refN+int64(i))%int64(len(s.ref))] = v
		}
		s.refN += int64(len(s.refTmp))
		for i := 0; i+4 <= len(s.refTmp); i += 4 {
			s.ref4[s.ref4N%int64(len(s.ref4))] = (s.refTmp[i] + s.refTmp[i+1] + s.refTmp[i+2] + s.refTmp[i+3]) / 4
			s.ref4N++
		}
		frame = frame[n:]
	}
}

// refAt copies samples [from, from+len(dst)) of a ring that has had n
// written into dst; samples not written yet or overwritten are zero. The
// reference rings need mu held.
func refAt(ring []float64, n, from int64, dst []float64) {
	for i := range dst {
		j := from + int64(i)
		if j < 0 || j >= n || j < n-int64(len(ring)) {
			dst[i] = 0
			continue
		}
		dst[i] = ring[j%int64(len(ring))]
	}
}

// Process runs one captured frame (the format's FrameLen) through the
// stage, in place.
func (s *Stage) Process(frame []int16) {
	if s.bypass {
		return
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(frame) != s.cfg.Format.FrameSamples() {
		return
	}
	s.mu.Lock()
	closed, gen := s.closed, s.gen
	s.mu.Unlock()
	if closed {
		return
	}
	if gen != s.seen {
		s.seen = gen
		s.startOver()
	}
	s.micDec.run(frame, s.micF)
	for i := 0; i+4 <= len(s.micF); i += 4 {
		s.mic4[s.mic4N%int64(len(s.mic4))] = (s.micF[i] + s.micF[i+1] + s.micF[i+2] + s.micF[i+3]) / 4
		s.mic4N++
	}
	// The reference that lines up with this frame, margin early.
	off := max(int64(s.delay)-int64(margin.Seconds()*procRate), 0)
	s.mu.Lock()
	refAt(s.ref, s.refN, s.micN-off, s.refProc)
	var farPow float64
	s.mu.Unlock()
	for i, v := range s.refProc {
		s.play[i] = sat16(v)
		farPow += v * v
	}
	farPow /= float64(len(s.refProc))
	for i, v := range s.micF {
		s.rec[i] = sat16(v)
	}
	if s.dsp != nil {
		// speexdsp in 5 ms blocks: its preprocessor delays by one block.
		for at := 0; at < s.frame; at += s.block {
			b := at + s.block
			s.dsp.cancel(s.rec[at:b], s.play[at:b], s.out[at:b])
			s.dsp.preprocess(s.out[at:b])
		}
	} else {
		copy(s.out, s.rec)
	}
	s.micN += int64(s.frame)

	// The echo return loss enhancement, while the far end talks.
	var pm, po float64
	for i := range s.rec {
		pm += float64(s.rec[i]) * float64(s.rec[i])
		po += float64(s.out[i]) * float64(s.out[i])
	}
	pm /= float64(s.frame)
	po /= float64(s.frame)
	farTalks := farPow > farFloor
	if farTalks {
		s.farHold = int(200 / s.cfg.Format.FrameMs) // 200 ms of echo tail
		s.pm += 0.1 * (pm - s.pm)
		s.po += 0.1 * (po - s.po)
		inst := 10 * math.Log10((s.pm+1)/(s.po+1))
		s.inst = inst
		step := 0.5 * float64(s.cfg.Format.FrameMs) / 1000 // falls 0.5 dB/s at most
		s.erle = max(inst, s.erle-step)
	} else if s.farHold > 0 {
		s.farHold--
	}
	duck := 0.0
	// Only an echo path that was found (the capture correlates with the
	// reference) is worth ducking for: with a headset, or no coupling at
	// all, nothing comes back and the near end must pass.
	if s.cfg.Duck && s.est.known && (farTalks || s.farHold > 0) && s.erle < s.cfg.DuckBelow {
		duck = min(s.cfg.DuckBelow-s.erle, 30)
	}
	want := math.Pow(10, -duck/20)
	// Attack within a frame, release over about 150 ms; a ramp per frame.
	from := s.duckGain
	to := want
	if want > from {
		to = from + (want-from)*float64(s.cfg.Format.FrameMs)/150
	}
	for i, v := range s.out {
		g := from + (to-from)*float64(i+1)/float64(len(s.out))
		s.outF[i] = float64(v) * g
	}
	s.duckGain = to
	s.up.run(s.outF, frame)

	// The delay, every 250 ms on the last second (from half a second on).
	s.sinceEs++
	if s.sinceEs >= s.every && s.mic4N >= int64(s.est.win/2) {
		s.sinceEs = 0
		refAt(s.mic4, s.mic4N, s.mic4N-int64(s.est.win), s.estMic)
		s.mu.Lock()
		refAt(s.ref4, s.ref4N, s.mic4N-int64(s.est.win+s.est.maxLag), s.estRef)
		s.mu.Unlock()
		// Only a window where the far end is present against what the
		// microphone hears says anything about the echo path: with the
		// near end talking over a faint reference (what comes back from
		// the far end while we talk: its residual of our own voice),
		// GCC-PHAT finds peaks that are not the path. And a lag in use
		// that works (the canceller takes 15 dB or more off now) is kept:
		// a path that really moved makes the canceller fail first.
		ref, mic := energy(s.estRef), energy(s.estMic)
		if ref > farFloor/16 && mic > 0 && ref >= mic/100 && !(s.est.known && s.inst >= keepDB) {
			lag, conf := s.est.estimate(s.estMic, s.estRef)
			if s.est.update(lag, conf) {
				s.delay = s.est.cur * (procRate / estRate)
			}
		}
	}
	s.mu.Lock()
	s.stats.Frames++
	s.stats.DelayKnown = s.est.known
	s.stats.Delay = time.Duration(s.delay) * time.Second / procRate
	s.stats.DelayChanges = s.est.changes
	s.stats.ERLE = s.erle
	s.stats.Duck = -20 * math.Log10(s.duckGain)
	if s.stats.Duck >= 1 {
		s.stats.DuckedFrames++
	}
	s.mu.Unlock()
}

// keepDB is the ERLE over the last few hundred ms above which the delay
// in use is kept whatever the estimator says.
const keepDB = 15

// farFloor is the reference power (int16 units squared) above which the
// far end counts as talking: about -50 dBFS.
const farFloor = 100 * 100

func energy(x []float64) float64 {
	var e float64
	for _, v := range x {
		e += v * v
	}
	return e / float64(max(len(x), 1))
}

// Stats may be called from any goroutine.
func (s *Stage) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close frees the canceller; later frames pass through untouched. It is
// idempotent.
func (s *Stage) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.dsp != nil {
		s.dsp.close()
		s.dsp = nil
	}
	return nil
}
