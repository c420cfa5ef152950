// Package playout is the receive-side audio jitter buffer: it absorbs network
// jitter with a small prebuffer, caps latency by dropping the oldest audio,
// fills underruns with click-free silence for the speaker, and compensates the
// drift between the sender's and the speaker's sample clocks by dropping or
// inserting a single interpolated sample now and then.
package playout

import (
	"fmt"
	"sync"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// Defaults for a zero Config.
const (
	DefaultTarget = 40 * time.Millisecond
	DefaultMax    = 120 * time.Millisecond
)

// Limits checked by Config.Validate.
const (
	MinTarget = 10 * time.Millisecond
	MaxTarget = 500 * time.Millisecond
	MaxMax    = 2 * time.Second
)

// ConcealMax bounds concealment (see Concealer) after each underrun:
// past it the output ramps to silence. Opus' own concealment fades out
// over about this long.
const ConcealMax = 100 * time.Millisecond

// Concealer makes up audio for a gap in what arrived: typically a
// decoder's packet-loss concealment, which continues the last audio
// plausibly instead of cutting it to silence. Conceal fills dst (one
// frame of the Buffer's format, interleaved); it is called from Read,
// under the Buffer's lock, so it must be quick and must not call the
// Buffer.
type Concealer interface {
	Conceal(dst []int16)
}

// fadeTime is the length of the fade-in after silence and of the ramp to zero
// on underrun: long enough to remove the click, short enough to be inaudible.
const fadeTime = 2 * time.Millisecond

// Config configures a Buffer. The zero value is valid.
type Config struct {
	Format media.AudioFormat // zero: media.DefaultAudio
	// Target is the depth to reach before playing starts or restarts, and
	// the floor of the adaptive target; zero: DefaultTarget.
	Target time.Duration
	Max    time.Duration // latency cap, rounded down to whole frames; zero: DefaultMax
	// Fixed keeps the target at Target. Otherwise it follows the jitter
	// measured on arrival (see Buffer.Read), between Target and Max less
	// one frame.
	Fixed bool
	// NoDrift turns drift compensation off: the Buffer then only ever plays
	// whole received frames, and its depth follows any difference between
	// the two sample clocks until the latency cap or an underrun resets it.
	NoDrift bool
}

func (c Config) withDefaults() Config {
	if c.Format == (media.AudioFormat{}) {
		c.Format = media.DefaultAudio
	}
	if c.Target == 0 {
		c.Target = DefaultTarget
	}
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	return c
}

// Validate reports the first field outside its allowed range, after zero
// fields have taken their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Format.Validate(); err != nil {
		return fmt.Errorf("playout: Format: %w", err)
	}
	if c.Target < MinTarget || c.Target > MaxTarget {
		return fmt.Errorf("playout: Target %v out of range %v..%v", c.Target, MinTarget, MaxTarget)
	}
	if least := c.Target + c.Format.FrameDuration(); c.Max < least || c.Max > MaxMax {
		return fmt.Errorf("playout: Max %v out of range %v (Target + one frame)..%v", c.Max, least, MaxMax)
	}
	return nil
}

// FadeSamples is the length, in samples per channel, of the fade-in after
// silence and of the ramp to zero on underrun (about 2 ms).
func FadeSamples(f media.AudioFormat) int {
	return int(int64(f.Rate) * int64(fadeTime) / int64(time.Second))
}

// Stats is a snapshot of a Buffer's counters since New or the last Reset.
type Stats struct {
	Depth         time.Duration // audio queued and not yet played
	Pushed        uint64        // frames accepted by Push
	Played        uint64        // frames played to their last sample
	Underruns     uint64        // times the buffer ran dry while playing
	Overflow      uint64        // frames dropped (oldest first) to keep Depth within Max
	Late          uint64        // frames dropped because their Seq was not newer than the last one pushed
	Rejected      uint64        // frames dropped because their length was not one frame
	SilenceFrames uint64        // frames' worth of silence (prebuffer and underrun fill) output
	Concealed     uint64        // frames the Concealer made up after underruns
	Playing       bool          // false while prebuffering
	// Drift compensation, in samples per channel: Squeezed samples were
	// merged with their neighbour (the buffer played faster), Stretched ones
	// inserted between two neighbours (it played slower).
	Squeezed  uint64
	Stretched uint64
	// Level is the drift controller's estimate of the depth it steers: the
	// depth before each Read, averaged over seconds. Zero until it has one.
	Level time.Duration
	// Target is the depth the Buffer keeps now: Config.Target, or more
	// while the arrivals jitter. Jitter is the last measured spread of
	// arrival times (zero before the first measurement).
	Target time.Duration
	Jitter time.Duration
}

// Buffer is an audio jitter buffer. Push and Read may be called concurrently
// from different goroutines; neither blocks beyond a short mutex hold.
type Buffer struct {
	format   media.AudioFormat
	channels int
	frameLen int // int16 values per frame, all channels
	target   int // depth in int16 values needed to (re)start playing
	fade     int // fade-in and underrun ramp length, samples per channel

	mu sync.Mutex
	// ring holds queued frames, slots*frameLen values allocated once. It is
	// bounded by Max: when full, Push drops the oldest frame (Overflow).
	ring     []int16
	slots    int
	head     int  // slot of the oldest queued frame
	count    int  // queued frames, including a partly played head
	off      int  // values of the head frame already played
	haveSeq  bool // lastSeq is meaningful
	lastSeq  uint32
	playing  bool
	fadePos  int     // fade-in samples done since playing (re)started
	rampPos  int     // underrun ramp samples done; ramp active while < fade
	rampFrom []int16 // per channel: the value the ramp starts from
	last     []int16 // per channel: the last value output

	pushed, played, underruns, overflow, late, rejected uint64
	silence                                             uint64 // int16 values of silence output

	// Concealment after an underrun (see Concealer): plc is the frame being
	// output, plcOff how much of it is out (len(plc): none under way),
	// plcLeft how many more frames this underrun may conceal, plcJoin that
	// the last output was concealment, so playing resumes without a fade.
	conceal   Concealer
	plc       []int16
	plcOff    int
	plcLeft   int
	plcMax    int
	plcJoin   bool
	concealed uint64

	drift drift
	adapt bool
	floor int // Config.Target in int16 values
	jit   jitter
	now   func() time.Time
}

// New returns an empty Buffer that outputs silence until Target is queued.
func New(cfg Config) (*Buffer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	f := cfg.Format
	perValue := func(d time.Duration) int {
		return int(int64(d)*int64(f.Rate)/int64(time.Second)) * f.Channels
	}
	b := &Buffer{
		format:   f,
		channels: f.Channels,
		frameLen: f.FrameLen(),
		target:   perValue(cfg.Target),
		fade:     FadeSamples(f),
		slots:    int(cfg.Max / f.FrameDuration()),
		last:     make([]int16, f.Channels),
		rampFrom: make([]int16, f.Channels),
	}
	b.ring = make([]int16, b.slots*b.frameLen)
	b.rampPos = b.fade
	b.plc = make([]int16, b.frameLen)
	b.plcOff = b.frameLen
	b.plcMax = max(1, int(ConcealMax/f.FrameDuration()))
	b.drift = newDrift(f, b.target/f.Channels, !cfg.NoDrift)
	b.floor = b.target
	b.adapt = !cfg.Fixed
	b.jit = newJitter(f.FrameDuration(), cfg.Target, time.Duration(b.slots-1)*f.FrameDuration())
	b.now = time.Now
	return b, nil
}

// Format is the audio format the Buffer was configured with.
func (b *Buffer) Format() media.AudioFormat { return b.format }

// Push queues one received frame. It never blocks. The Buffer takes ownership
// of a.Samples: the caller must not modify them afterwards. A frame whose length
// is not Format.FrameLen is rejected; one whose Seq is not newer than the last
// frame pushed (a duplicate or a late arrival; compared modulo 2^32) is dropped.
// When the queue is full the oldest frames are dropped to make room.
func (b *Buffer) Push(a media.Audio) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(a.Samples) != b.frameLen {
		b.rejected++
		return
	}
	if b.haveSeq && int32(a.Seq-b.lastSeq) <= 0 {
		b.late++
		return
	}
	b.haveSeq, b.lastSeq = true, a.Seq
	at := a.Arrived
	if at.IsZero() {
		at = b.now()
	}
	if b.adapt && !a.Concealed && b.jit.arrive(a.Seq, at) {
		b.setTarget(b.jit.target)
	}
	if b.count == b.slots {
		// Latency cap: drop the oldest, even if partly played, so depth never
		// exceeds Max. With frame-sized reads no frame is ever partly played.
		b.advance()
		b.overflow++
	}
	tail := (b.head + b.count) % b.slots
	copy(b.ring[tail*b.frameLen:(tail+1)*b.frameLen], a.Samples)
	b.count++
	b.pushed++
}

// setTarget moves the depth to (re)start at and the drift controller's
// aim: after an underrun playing waits for the new depth, and while it
// plays the controller stretches or squeezes toward it.
func (b *Buffer) setTarget(d time.Duration) {
	b.target = int(int64(d)*int64(b.format.Rate)/int64(time.Second)) * b.channels
	b.drift.target = float64(b.target / b.channels)
}

// advance removes the head frame.
func (b *Buffer) advance() {
	b.head = (b.head + 1) % b.slots
	b.count--
	b.off = 0
}

func (b *Buffer) depth() int { return b.count*b.frameLen - b.off }

// Read fills dst with the next audio to play. It never blocks and does not
// allocate, so it may be called from an audio device callback. len(dst) should
// be a multiple of Format.Channels; any remainder is zeroed.
//
// Before Target is queued (at start and after each underrun) Read outputs
// silence. Playback starts with a fade-in over FadeSamples. On underrun Read
// outputs what it has and fills the rest with silence that ramps from the last
// sample to zero over FadeSamples; with a Concealer (SetConcealer) it first
// outputs up to ConcealMax of concealed frames, and playing resumes from
// them without a fade when the Buffer refills in time. When len(dst) is Format.FrameLen, each call
// outputs one whole received frame or one whole block of fill, until drift
// compensation first adjusts a sample; from then until the next underrun,
// blocks straddle frames.
//
// Drift compensation: the Buffer averages its depth before each Read over
// one-second windows and smooths the averages (a time constant of five
// seconds). Once it has watched five seconds of playing since New or Reset
// (an underrun does not start that over), when that level is more than one
// and a half frames from Target, it starts squeezing or stretching samples
// at a rate that closes the gap in about ten seconds (0.05 % to 0.4 %), and
// stops once the level is within half a frame of Target. Two clocks ±200 ppm
// apart move the depth by 0.2 ms a second, so the depth stays within a frame
// or two of Target for hours; between boxes sharing one clock, or over a
// short call, it never acts and output stays bit-exact.
func (b *Buffer) Read(dst []int16) {
	n := len(dst) - len(dst)%b.channels
	clear(dst[n:])
	dst = dst[:n]

	b.mu.Lock()
	defer b.mu.Unlock()
	i := 0
	for first := true; i < len(dst); first = false {
		// Start only once an underrun ramp or a concealed frame has
		// finished, so the fade-in begins from zero rather than jumping
		// from the middle of the ramp, and concealment hands over to what
		// arrived on a frame boundary, as a decoder's concealment expects.
		if !b.playing && b.rampPos >= b.fade && b.plcOff == len(b.plc) && b.depth() >= b.target {
			b.playing, b.fadePos = true, 0
			if b.plcJoin {
				b.fadePos = b.fade // the concealment led up to it: no fade
			}
			b.plcJoin = false
			b.drift.resume(b.depth() / b.channels)
		}
		if b.playing {
			if first {
				b.drift.observe(b.depth()/b.channels, len(dst)/b.channels)
			}
			i += b.play(dst[i:])
			if i < len(dst) {
				b.playing = false
				b.underruns++
				if b.conceal != nil {
					b.plcLeft = b.plcMax
				} else {
					b.startRamp()
				}
			}
			continue
		}
		k := b.concealInto(dst[i:])
		if k == 0 {
			break
		}
		i += k
	}
	b.fill(dst[i:])
}

// concealInto writes concealed audio into dst while an underrun may still
// be concealed, and returns how many values it wrote. It stops at the end
// of a concealed frame; when the underrun's concealment is spent, or
// frames arrived but fewer than the target (the Concealer, a decoder, has
// moved past the gap), it starts the ramp to silence from the last value.
func (b *Buffer) concealInto(dst []int16) int {
	if b.plcOff == len(b.plc) {
		if b.plcLeft == 0 || b.conceal == nil {
			return 0
		}
		if b.count > 0 {
			// Audio arrived but not yet enough to play: the decoder has
			// decoded it, so its concealment would no longer continue
			// what was played (and would garble what it decodes next).
			// Ramp down from here and wait for the target.
			b.plcLeft, b.plcJoin = 0, false
			b.startRamp()
			return 0
		}
		b.conceal.Conceal(b.plc)
		b.plcOff, b.plcJoin = 0, true
		b.plcLeft--
		b.concealed++
	}
	k := copy(dst, b.plc[b.plcOff:])
	b.plcOff += k
	if k >= b.channels {
		copy(b.last, dst[k-b.channels:k])
	}
	if b.plcOff == len(b.plc) && b.plcLeft == 0 && b.depth() < b.target {
		b.plcJoin = false
		b.startRamp()
	}
	return k
}

// SetConcealer makes c fill underruns from now on (nil: silence). A
// Concealer is tied to one stream of audio, so a call sets its own.
func (b *Buffer) SetConcealer(c Concealer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conceal = c
	if c == nil {
		b.plcLeft = 0
	}
}

// DropConcealer removes c if it is the Buffer's Concealer: a call that
// ended does not take away the next call's.
func (b *Buffer) DropConcealer(c Concealer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conceal == c {
		b.conceal, b.plcLeft = nil, 0
	}
}

// play copies queued audio into dst and returns how many values it wrote.
// While the drift controller is correcting, every step-th output sample is
// an adjusted one: two input samples merged into their mean (squeeze), or
// the mean of the last output and the next input inserted (stretch). The
// change is one sample in hundreds, far below hearing (a 0.1 % change of
// pitch), and the interpolation leaves no step in the waveform.
func (b *Buffer) play(dst []int16) int {
	i := 0
	for i < len(dst) && b.count > 0 {
		n := len(dst) - i
		if d := &b.drift; d.dir != 0 {
			if d.until == 0 {
				if !b.adjust(dst, i) {
					d.until = 1 // not enough queued to merge: try at the next sample
				} else {
					i += b.channels
					d.until = d.step
					continue
				}
			}
			n = min(n, d.until*b.channels)
		}
		start := b.head*b.frameLen + b.off
		k := copy(dst[i:i+n], b.ring[start:(b.head+1)*b.frameLen])
		i += k
		b.off += k
		if b.drift.dir != 0 {
			b.drift.until -= k / b.channels
		}
		if b.off == b.frameLen {
			b.advance()
			b.played++
		}
	}
	b.fadeIn(dst[:i])
	if i > 0 {
		copy(b.last, dst[i-b.channels:i])
	}
	return i
}

// adjust writes one adjusted sample (all channels) at dst[i:] and reports
// whether it could: a squeeze needs two queued samples.
func (b *Buffer) adjust(dst []int16, i int) bool {
	if len(dst)-i < b.channels {
		return false
	}
	out := dst[i : i+b.channels]
	next := b.ring[b.head*b.frameLen+b.off:]
	switch b.drift.dir {
	case squeeze:
		if b.depth() < 2*b.channels {
			return false
		}
		// The sample after next may be in the next frame of the ring.
		off := b.off + b.channels
		second := b.ring[b.head*b.frameLen+off:]
		if off == b.frameLen {
			second = b.ring[(b.head+1)%b.slots*b.frameLen:]
		}
		for c := range b.channels {
			out[c] = int16((int32(next[c]) + int32(second[c])) / 2)
		}
		b.consume(2 * b.channels)
		b.drift.squeezed++
		b.drift.level-- // one sample less queued, known without measuring
	case stretch:
		prev := b.last
		if i >= b.channels {
			prev = dst[i-b.channels : i]
		}
		for c := range b.channels {
			out[c] = int16((int32(prev[c]) + int32(next[c])) / 2)
		}
		b.drift.stretched++
		b.drift.level++
	}
	return true
}

// consume drops n values from the head of the queue, counting frames that
// are thereby finished as played.
func (b *Buffer) consume(n int) {
	for n > 0 && b.count > 0 {
		k := min(n, b.frameLen-b.off)
		b.off += k
		n -= k
		if b.off == b.frameLen {
			b.advance()
			b.played++
		}
	}
}

// startRamp begins a ramp from the last value output down to zero.
func (b *Buffer) startRamp() {
	copy(b.rampFrom, b.last)
	b.rampPos = 0
}

// fadeIn scales the first fade samples after playback starts by a rising
// gain below one; truncation toward zero keeps |out| <= |in| with the same sign.
func (b *Buffer) fadeIn(s []int16) {
	for k := 0; k+b.channels <= len(s) && b.fadePos < b.fade; k += b.channels {
		for c := range b.channels {
			s[k+c] = int16(int32(s[k+c]) * int32(b.fadePos+1) / int32(b.fade+1))
		}
		b.fadePos++
	}
}

// fill writes silence into dst, starting with what remains of the ramp.
func (b *Buffer) fill(dst []int16) {
	if len(dst) == 0 {
		return
	}
	b.silence += uint64(len(dst))
	k := 0
	for ; k+b.channels <= len(dst) && b.rampPos < b.fade; k += b.channels {
		for c := range b.channels {
			dst[k+c] = int16(int32(b.rampFrom[c]) * int32(b.fade-b.rampPos) / int32(b.fade+1))
		}
		b.rampPos++
	}
	clear(dst[k:])
	copy(b.last, dst[len(dst)-b.channels:])
}

// Stats returns a snapshot of the counters.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{
		Depth:         time.Duration(b.depth()/b.channels) * time.Second / time.Duration(b.format.Rate),
		Pushed:        b.pushed,
		Played:        b.played,
		Underruns:     b.underruns,
		Overflow:      b.overflow,
		Late:          b.late,
		Rejected:      b.rejected,
		SilenceFrames: b.silence / uint64(b.frameLen),
		Concealed:     b.concealed,
		Playing:       b.playing,
		Squeezed:      b.drift.squeezed,
		Stretched:     b.drift.stretched,
		Level:         b.drift.levelDuration(),
		Target:        time.Duration(b.target/b.channels) * time.Second / time.Duration(b.format.Rate),
		Jitter:        b.jit.spread,
	}
}

// Reset empties the buffer, forgets the last Seq and zeroes the counters, for
// a new call. If audio was playing, the next Read ramps it down to zero.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.head, b.count, b.off = 0, 0, 0
	b.haveSeq, b.lastSeq = false, 0
	b.playing, b.fadePos = false, 0
	b.startRamp()
	b.pushed, b.played, b.underruns, b.overflow, b.late, b.rejected, b.silence = 0, 0, 0, 0, 0, 0, 0
	b.plcOff, b.plcLeft, b.plcJoin, b.concealed = len(b.plc), 0, false, 0
	b.drift.restart()
	b.drift.squeezed, b.drift.stretched = 0, 0
	b.jit.restart()
	b.target = b.floor
	b.drift.target = float64(b.floor / b.channels)
}
