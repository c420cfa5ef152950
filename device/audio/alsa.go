package audio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// ErrStopped means an ALSA device stopped without being asked to, because
// it failed or was unplugged. The daemon should close it and open it again.
var ErrStopped = errors.New("device stopped on its own")

// NullDevice is the ALSAConfig.Device that selects miniaudio's null backend
// instead of ALSA: a device with no hardware that runs in real time,
// capturing silence and discarding playback.
const NullDevice = "null"

// Limits and defaults of ALSAConfig.
const (
	DefaultDevice  = "default"
	DefaultPeriods = 3
	MinPeriods     = 2
	MaxPeriods     = 8

	// maxDeviceName is the longest PCM name miniaudio's device id holds
	// (256 bytes with the terminating NUL).
	maxDeviceName = 255
)

// captureRing is how many whole frames the capture ring holds for Read:
// 8 frames, 80 ms at 10 ms frames. A reader later than that loses the oldest.
const captureRing = 8

// watchEvery is how often an ALSA device is polled in case it stopped
// without its stop notice (miniaudio skips it when stopping an unplugged
// device fails).
const watchEvery = 250 * time.Millisecond

// ALSAConfig configures OpenCapture and OpenPlayback. The zero value opens
// the "default" PCM in media.DefaultAudio with three periods.
type ALSAConfig struct {
	// Device is the ALSA PCM name passed to snd_pcm_open ("default",
	// "hw:CARD=Device,DEV=0", "plughw:1,0", a name from List), or
	// NullDevice. Empty means DefaultDevice.
	Device string
	// Format is the PCM format; the zero value means media.DefaultAudio.
	// One device period is one frame (10 or 20 ms).
	Format media.AudioFormat
	// Periods is how many periods the device buffer holds (capture), or
	// how many are queued for the card at most (playback, whose ring holds
	// playbackRing), MinPeriods to MaxPeriods; zero means DefaultPeriods.
	// Fewer is lower latency, more survives longer scheduling stalls.
	Periods int
	// Logger receives device faults and miniaudio's messages (at debug
	// level); nil discards them.
	Logger *slog.Logger
}

// withDefaults fills in the zero fields and validates.
func (c ALSAConfig) withDefaults() (ALSAConfig, error) {
	if c.Device == "" {
		c.Device = DefaultDevice
	}
	if c.Periods == 0 {
		c.Periods = DefaultPeriods
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if c.Format, err = format(c.Format); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate reports a field out of range, naming it. Zero fields are valid
// (they mean the defaults).
func (c ALSAConfig) Validate() error {
	if len(c.Device) > maxDeviceName {
		return fmt.Errorf("audio: device: name of %d bytes, longer than %d", len(c.Device), maxDeviceName)
	}
	for _, b := range []byte(c.Device) {
		if b == 0 {
			return fmt.Errorf("audio: device: %q contains a NUL byte", c.Device)
		}
	}
	if c.Periods != 0 && (c.Periods < MinPeriods || c.Periods > MaxPeriods) {
		return fmt.Errorf("audio: periods: %d out of range %d..%d", c.Periods, MinPeriods, MaxPeriods)
	}
	if c.Format != (media.AudioFormat{}) {
		if err := c.Format.Validate(); err != nil {
			return fmt.Errorf("audio: format: %w", err)
		}
	}
	return nil
}

// pcm is the device under an ALSACapture or ALSAPlayback; the cgo build
// implements it with malgo. Its data callback calls the owner's push or
// render; when it stops other than through stop or close it calls the
// owner's deviceStopped.
type pcm interface {
	start() error
	// stop stops the device at our request; its stop notice is not
	// reported. Stopping a stopped device is not an error.
	stop() error
	// running reports whether the device is started; it turns false when
	// the device stops, on its own or through stop.
	running() bool
	// close stops the device and releases it; it is called once.
	close() error
}

// CaptureStats counts what an ALSACapture captured and lost.
type CaptureStats struct {
	Frames   uint64 // frames returned by Read
	Dropped  uint64 // frames dropped, oldest first, because the ring was full: Read was late
	Overruns uint64 // overruns ALSA reported: audio lost in the device because its thread was late
	Queued   int    // frames in the ring now, waiting for Read
}

// PlaybackStats counts what an ALSAPlayback played.
type PlaybackStats struct {
	Frames uint64 // periods pulled through fill
	// Underruns counts underruns ALSA reported: fill was late, the ring ran
	// dry and the card stopped, playing silence, until miniaudio restarted
	// it with the next periods (underrun_cgo.go). Zero if the PCM refused
	// to stop on an underrun (the open logs a warning): it then runs on.
	Underruns uint64
}

// ALSACapture is a microphone: an ALSA capture PCM (or the null backend)
// read through miniaudio. The device runs from Open to Close; its callback
// copies each period into a ring of captureRing frames and never blocks.
// When the ring is full the oldest frame is dropped and counted (a Seq gap).
type ALSACapture struct {
	name   string
	format media.AudioFormat
	log    *slog.Logger
	ring   *frameRing
	dev    pcm // set once by the opener, before start

	overruns    atomic.Uint64
	monitoring  bool          // monitor started; set before Open returns
	stopped     chan struct{} // cap 1: the device stopped on its own
	stopping    atomic.Bool   // set before we stop the device ourselves
	done        chan struct{} // closed by Close
	monitorDone chan struct{} // closed when monitor returns
	closeOnce   sync.Once
	closeErr    error
}

var _ Source = (*ALSACapture)(nil)

func newCapture(name string, f media.AudioFormat, log *slog.Logger) *ALSACapture {
	return &ALSACapture{
		name:        name,
		format:      f,
		log:         log.With("component", "audio", "device", name, "dir", "capture"),
		ring:        newFrameRing(f, captureRing),
		stopped:     make(chan struct{}, 1),
		done:        make(chan struct{}),
		monitorDone: make(chan struct{}),
	}
}

// run starts the device and the goroutine that watches it.
func (c *ALSACapture) run() error {
	if err := c.dev.start(); err != nil {
		return err
	}
	c.monitoring = true
	go c.monitor()
	return nil
}

// push is the data callback: it copies one callback's samples into the
// ring. It never blocks beyond the ring's short critical section and does
// not allocate.
func (c *ALSACapture) push(in []byte) { c.ring.push(in, time.Now()) }

// deviceStopped is the stop callback; it must not block.
func (c *ALSACapture) deviceStopped() {
	if c.stopping.Load() {
		return
	}
	select {
	case c.stopped <- struct{}{}:
	default:
	}
}

// monitor turns a device that stopped on its own into an error for Read.
func (c *ALSACapture) monitor() {
	defer close(c.monitorDone)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.stopped:
		case <-t.C:
			if c.dev.running() {
				continue
			}
		}
		c.log.Error("capture device stopped on its own")
		c.ring.fail(fmt.Errorf("audio: capture %q: %w", c.name, ErrStopped))
		return
	}
}

// Read blocks until a whole frame has been captured, ctx ends (ctx.Err())
// or the capture is closed (ErrClosed). Frames come out oldest first; Seq
// counts captured frames, so a gap shows frames dropped because Read was
// late. Time estimates when the frame's first sample was captured, from
// when the device delivered it. If the device stopped on its own, Read
// returns the frames still in the ring and then an error wrapping
// ErrStopped. Concurrent Reads each get different frames.
func (c *ALSACapture) Read(ctx context.Context) (media.Audio, error) {
	return c.ring.pop(ctx, c.done)
}

// Format is the capture's audio format.
func (c *ALSACapture) Format() media.AudioFormat { return c.format }

// Name is the PCM name the capture was opened with.
func (c *ALSACapture) Name() string { return c.name }

// Stats may be called from any goroutine.
func (c *ALSACapture) Stats() CaptureStats {
	st := c.ring.stats()
	st.Overruns = c.overruns.Load()
	return st
}

// Close makes blocked and later Reads return ErrClosed, stops the device and
// releases it. It waits for that and is idempotent; it may be called from
// any goroutine.
func (c *ALSACapture) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		if c.dev == nil {
			return
		}
		if c.monitoring {
			<-c.monitorDone
		}
		c.stopping.Store(true)
		if err := c.dev.close(); err != nil {
			c.closeErr = fmt.Errorf("audio: close capture %q: %w", c.name, err)
		}
	})
	return c.closeErr
}

// ALSAPlayback is a speaker: an ALSA playback PCM (or the null backend)
// written through miniaudio. The device runs only while Run does. When fill
// is late the card plays silence, never what it played before: the PCM
// stops once its ring has run dry and starts again with the next periods,
// and its driver zeroes each area of the ring once played (ALSA's
// stop_threshold = buffer size and silence_size = boundary, set as it
// opens), so neither an underrun nor a new Run plays stale audio. The open
// logs a warning if the PCM refuses those parameters.
type ALSAPlayback struct {
	name   string
	format media.AudioFormat
	log    *slog.Logger
	dev    pcm // set once by the opener

	fill      atomic.Pointer[func([]int16)] // set while Run is active
	buf       []int16                       // fill's dst; used by the device thread only
	frames    atomic.Uint64
	underruns atomic.Uint64

	run       sync.Mutex    // held by Run, and by Close from the start of teardown on
	stopped   chan struct{} // cap 1: the device stopped on its own
	stopping  atomic.Bool   // set while the device is stopped at our request
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
}

var _ Speaker = (*ALSAPlayback)(nil)

func newPlayback(name string, f media.AudioFormat, log *slog.Logger) *ALSAPlayback {
	p := &ALSAPlayback{
		name:    name,
		format:  f,
		log:     log.With("component", "audio", "device", name, "dir", "playback"),
		buf:     make([]int16, f.FrameLen()),
		stopped: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	p.stopping.Store(true) // not started yet
	return p
}

// render is the data callback: it pulls one period through fill and writes
// it to out as native-endian s16. It allocates only if the device hands it
// a period longer than a frame, which miniaudio's fixed-size callback does
// not.
func (p *ALSAPlayback) render(out []byte) {
	n := len(out) / 2
	if n > cap(p.buf) {
		p.buf = make([]int16, n)
	}
	buf := p.buf[:n]
	if f := p.fill.Load(); f != nil {
		(*f)(buf)
	} else {
		clear(buf)
	}
	for i, v := range buf {
		binary.NativeEndian.PutUint16(out[2*i:], uint16(v))
	}
	p.frames.Add(1)
}

// deviceStopped is the stop callback; it must not block.
func (p *ALSAPlayback) deviceStopped() {
	if p.stopping.Load() {
		return
	}
	select {
	case p.stopped <- struct{}{}:
	default:
	}
}

// Run starts the device and, from its thread, calls fill once per period
// with dst of one period (one frame of Format), until ctx ends (then it
// stops the device and returns nil) or the device stops on its own (then it
// returns an error wrapping ErrStopped; close the playback and open it
// again). fill must write all of dst, must not block, must not keep dst and
// must not call Close. Run returns ErrRunning while another Run is active
// and ErrClosed after Close.
func (p *ALSAPlayback) Run(ctx context.Context, fill func(dst []int16)) error {
	if !p.run.TryLock() {
		select {
		case <-p.done:
			return ErrClosed
		default:
			return ErrRunning
		}
	}
	defer p.run.Unlock()
	select {
	case <-p.done:
		return ErrClosed
	default:
	}
	if ctx.Err() != nil {
		return nil
	}
	select { // a notice left from an earlier Run
	case <-p.stopped:
	default:
	}
	p.fill.Store(&fill)
	defer p.fill.Store(nil)
	p.stopping.Store(false)
	if err := p.dev.start(); err != nil {
		p.stopping.Store(true)
		return fmt.Errorf("audio: start playback %q: %w", p.name, err)
	}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	var err error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-p.done:
			err = ErrClosed
			break wait
		case <-p.stopped:
		case <-t.C:
			if p.dev.running() {
				continue
			}
		}
		err = fmt.Errorf("audio: playback %q: %w", p.name, ErrStopped)
		p.log.Error("playback device stopped on its own")
		break
	}
	p.stopping.Store(true)
	if serr := p.dev.stop(); serr != nil {
		p.log.Warn("stopping playback device", "err", serr)
	}
	return err
}

// Format is the playback's audio format.
func (p *ALSAPlayback) Format() media.AudioFormat { return p.format }

// Name is the PCM name the playback was opened with.
func (p *ALSAPlayback) Name() string { return p.name }

// Stats may be called from any goroutine.
func (p *ALSAPlayback) Stats() PlaybackStats {
	return PlaybackStats{Frames: p.frames.Load(), Underruns: p.underruns.Load()}
}

// Close makes an active Run stop the device and return ErrClosed, waits for
// it, and releases the device. It is idempotent and may be called from any
// goroutine except fill's.
func (p *ALSAPlayback) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		p.run.Lock() // waits for Run; never unlocked, so later Runs see ErrClosed
		if p.dev == nil {
			return
		}
		p.stopping.Store(true)
		if err := p.dev.close(); err != nil {
			p.closeErr = fmt.Errorf("audio: close playback %q: %w", p.name, err)
		}
	})
	return p.closeErr
}

// frameRing is the capture queue between the device thread and Read: a
// fixed ring of whole frames, allocated up front. Drop policy: when full,
// the oldest frame is dropped and counted, so a late reader gets the newest
// audio and sees a Seq gap. The device thread holds mu only to copy one
// callback in, Read only to copy one frame out.
type frameRing struct {
	format   media.AudioFormat
	frameLen int
	ready    chan struct{} // cap 1: a frame (or the error) may be waiting

	mu      sync.Mutex
	slots   [][]int16 // depth+1: depth whole frames and the one being filled
	seq     []uint32
	at      []time.Time
	head, n int    // n whole frames from slots[head]
	partial int    // values already in the slot being filled
	next    uint32 // Seq of the next frame to complete
	err     error  // once set, Read returns it after the ring is empty
	depth   int

	frames, dropped atomic.Uint64
}

func newFrameRing(f media.AudioFormat, depth int) *frameRing {
	r := &frameRing{
		format:   f,
		frameLen: f.FrameLen(),
		ready:    make(chan struct{}, 1),
		slots:    make([][]int16, depth+1),
		seq:      make([]uint32, depth+1),
		at:       make([]time.Time, depth+1),
		depth:    depth,
	}
	for i := range r.slots {
		r.slots[i] = make([]int16, r.frameLen)
	}
	return r
}

// push copies native-endian s16 interleaved samples delivered at now (the
// time their last sample was captured) into the ring.
func (r *frameRing) push(in []byte, now time.Time) {
	total := len(in) / 2 / r.format.Channels // samples per channel in this callback
	done := 0                                // values of in consumed
	completed := false
	r.mu.Lock()
	for done < len(in)/2 {
		slot := r.slots[(r.head+r.n)%len(r.slots)]
		k := min(r.frameLen-r.partial, len(in)/2-done)
		for i := range k {
			slot[r.partial+i] = int16(binary.NativeEndian.Uint16(in[2*(done+i):]))
		}
		r.partial += k
		done += k
		if r.partial < r.frameLen {
			break
		}
		// The frame's last sample is done/channels into this callback, whose
		// last sample was captured at now.
		after := total - done/r.format.Channels + r.format.FrameSamples()
		i := (r.head + r.n) % len(r.slots)
		r.at[i] = now.Add(-time.Duration(after) * time.Second / time.Duration(r.format.Rate))
		r.seq[i] = r.next
		r.next++
		r.partial = 0
		if r.n == r.depth {
			r.head = (r.head + 1) % len(r.slots)
			r.dropped.Add(1)
		} else {
			r.n++
		}
		completed = true
	}
	r.mu.Unlock()
	if completed {
		r.signal()
	}
}

func (r *frameRing) signal() {
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// fail makes pop return err once the ring is empty; the first error stays.
func (r *frameRing) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.signal()
}

// pop blocks until a whole frame is in the ring, ctx ends or done is closed.
func (r *frameRing) pop(ctx context.Context, done <-chan struct{}) (media.Audio, error) {
	select {
	case <-done:
		return media.Audio{}, ErrClosed
	default:
	}
	out := make([]int16, r.frameLen) // before locking: the device thread may be waiting
	for {
		r.mu.Lock()
		if r.n > 0 {
			copy(out, r.slots[r.head])
			a := media.Audio{Seq: r.seq[r.head], Time: r.at[r.head], Samples: out}
			r.head = (r.head + 1) % len(r.slots)
			r.n--
			more := r.n > 0
			r.mu.Unlock()
			r.frames.Add(1)
			if more { // another Read may be waiting for the token this one took
				r.signal()
			}
			return a, nil
		}
		err := r.err
		r.mu.Unlock()
		if err != nil {
			r.signal() // wake any other waiting Read too
			return media.Audio{}, err
		}
		select {
		case <-r.ready:
		case <-ctx.Done():
			return media.Audio{}, ctx.Err()
		case <-done:
			return media.Audio{}, ErrClosed
		}
	}
}

func (r *frameRing) stats() CaptureStats {
	r.mu.Lock()
	n := r.n
	r.mu.Unlock()
	return CaptureStats{Frames: r.frames.Load(), Dropped: r.dropped.Load(), Queued: n}
}
