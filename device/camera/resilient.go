package camera

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/internal/backoff"
	"github.com/callbox/callbox/stream/media"
)

// ResilientConfig configures a Resilient source. The zero value is valid.
type ResilientConfig struct {
	// MinBackoff is the wait before the first retry; 0 means 500 ms.
	MinBackoff time.Duration
	// MaxBackoff caps the doubling wait; 0 means 10 s.
	MaxBackoff time.Duration
	// HealthyAfter is how long a source must have run before its failure
	// starts the backoff over at MinBackoff; 0 means 1 minute.
	HealthyAfter time.Duration
	// Format is what Format reports before a source was ever opened;
	// zero means media.DefaultVideo.
	Format media.VideoFormat
	// OnChange, if set, is called with every new State, in order, from
	// the goroutine that owns the source. It must not block.
	OnChange func(state string)
	// Standby starts the source inactive (see SetActive): the first open
	// only checks the camera and closes it again at once.
	Standby bool
	// Probe, if set, says whether the camera is still there while it
	// stands by (closed): a cheap check such as the device node's
	// presence. Its error counts as a failure: the camera is down and
	// opened on the backoff schedule until an open works again.
	Probe func() error
	// ProbeEvery is the time between two Probe calls; 0 means 5 s.
	ProbeEvery time.Duration
	// Logger receives state changes; nil discards them.
	Logger *slog.Logger
}

// Validate reports a field outside its allowed range.
func (c ResilientConfig) Validate() error {
	switch {
	case c.MinBackoff < 0:
		return fmt.Errorf("camera: resilient: min backoff %v is negative", c.MinBackoff)
	case c.MaxBackoff < 0:
		return fmt.Errorf("camera: resilient: max backoff %v is negative", c.MaxBackoff)
	case c.MaxBackoff > 0 && c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("camera: resilient: max backoff %v below min backoff %v", c.MaxBackoff, c.MinBackoff)
	case c.HealthyAfter < 0:
		return fmt.Errorf("camera: resilient: healthy-after %v is negative", c.HealthyAfter)
	case c.ProbeEvery < 0:
		return fmt.Errorf("camera: resilient: probe interval %v is negative", c.ProbeEvery)
	}
	if c.Format != (media.VideoFormat{}) {
		if err := c.Format.Validate(); err != nil {
			return fmt.Errorf("camera: resilient: format: %w", err)
		}
	}
	return nil
}

// ResilientStats counts what a Resilient source did since it was made.
type ResilientStats struct {
	// Captured counts frames returned by Read; Skipped frames the sources
	// skipped plus frames replaced here before Read took them; Broken is
	// summed over every source opened.
	Stats
	Opens    uint64 // successful opens
	Failures uint64 // failed opens plus sources that failed while running
}

// Resilient is a Source that keeps a camera open: when opening fails or the
// open source fails, it closes it and tries again after a backoff that
// doubles from MinBackoff to MaxBackoff with ±20% jitter, starting over once
// a source had run for HealthyAfter. It never retries in a busy loop.
//
// One goroutine owns the source and reads it continuously into a one-frame
// slot; the queue to Read is that slot, latest wins (a frame Read did not
// take before the next one is dropped and counted as skipped). While the
// camera is down Read simply blocks, so a call goes on with audio only. Seq
// is renumbered here: it counts the frames Read returned across reopens.
type Resilient struct {
	open func(ctx context.Context) (Source, error)
	cfg  ResilientConfig
	log  *slog.Logger
	jit  func() float64 // in [0,1); tests may replace it before the first wait

	ctx    context.Context
	cancel context.CancelFunc
	closed chan struct{} // closed by Close
	done   chan struct{} // closed when the owner goroutine returns
	once   sync.Once

	delivered, replaced, opens, failures atomic.Uint64

	mu       sync.Mutex
	state    string
	format   media.VideoFormat
	src      Source // the open source, nil while down
	base     Stats  // Skipped and Broken of the sources already closed
	slot     *media.Frame
	closeErr error
	reopen   bool               // Reopen asked for a new source
	quality  int                // SetQuality's last value, for every source opened; 0: none yet
	encodes  bool               // the last source opened encodes its JPEGs (QualitySetter said so)
	active   bool               // SetActive: keep the source open
	stopSrc  context.CancelFunc // ends the open source's reads (Reopen, SetActive(false))

	ready chan struct{} // capacity 1: a frame arrived
	wake  chan struct{} // capacity 1: SetActive(true) while standing by

	seq uint32 // reader-owned
}

var _ Source = (*Resilient)(nil)

// statser is a source that counts what it did (V4L2, Synthetic, Replay).
type statser interface{ Stats() Stats }

// describer is a source that names its negotiated format (V4L2).
type describer interface{ Describe() string }

// NewResilient starts keeping the source made by open (called with a
// context that ends at Close; e.g. a closure around OpenV4L2) open. It
// returns at once; the first open happens on the owner goroutine, and
// State reports how it went. Fields Validate would reject are replaced by
// their defaults (check with Validate first to report them).
func NewResilient(open func(ctx context.Context) (Source, error), cfg ResilientConfig) *Resilient {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.HealthyAfter <= 0 {
		cfg.HealthyAfter = time.Minute
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = 5 * time.Second
	}
	if cfg.Format == (media.VideoFormat{}) || cfg.Format.Validate() != nil {
		cfg.Format = media.DefaultVideo
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Resilient{
		open:   open,
		cfg:    cfg,
		log:    log.With("component", "camera"),
		jit:    rand.Float64,
		ctx:    ctx,
		cancel: cancel,
		closed: make(chan struct{}),
		done:   make(chan struct{}),
		state:  "starting",
		format: cfg.Format,
		active: !cfg.Standby,
		ready:  make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
	}
	go r.run()
	return r
}

// run is the owner goroutine: open, read until failure, back off, repeat;
// and while inactive, stand by with the source closed.
func (r *Resilient) run() {
	defer close(r.done)
	retry := backoff.New(backoff.Policy{First: r.cfg.MinBackoff, Max: r.cfg.MaxBackoff, Healthy: r.cfg.HealthyAfter})
	retry.Jitter = r.jit
	for {
		r.mu.Lock()
		r.reopen = false // this open sees what Reopen was asked for
		r.mu.Unlock()
		src, err := r.open(r.ctx)
		if r.ctx.Err() != nil {
			if err == nil && src != nil {
				r.closeSource(src)
			}
			return
		}
		if err == nil && src == nil {
			err = fmt.Errorf("camera: open returned no source")
		}
		if err == nil {
			r.opens.Add(1)
			opened := time.Now()
			sctx, stop := context.WithCancel(r.ctx)
			r.mu.Lock()
			r.src, r.format, r.stopSrc = src, src.Format(), stop
			// The quality asked for so far (0: none, then it only asks).
			qs, ok := src.(QualitySetter)
			r.encodes = ok && qs.SetQuality(r.quality)
			if r.reopen || !r.active { // asked while opening: this source may be stale or unneeded
				stop()
			}
			r.mu.Unlock()
			r.setState("ok " + describe(src))
			err = r.pump(sctx, src)
			stopped := sctx.Err() != nil // by Reopen or SetActive(false), not a failure
			stop()
			r.closeSource(src)
			if r.ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			again, idle := r.reopen, !r.active
			r.stopSrc = nil
			r.mu.Unlock()
			if stopped && idle {
				// The camera worked: closed until it is needed again.
				if err = r.standby(); err == nil {
					continue
				}
				if r.ctx.Err() != nil {
					return
				}
			} else if again {
				continue // at once: not a failure
			} else {
				retry.Ran(time.Since(opened))
			}
		}
		r.failures.Add(1)
		d := retry.Next()
		r.setState(fmt.Sprintf("down: %v; retrying in %v", err, d.Round(100*time.Millisecond)))
		if backoff.Wait(r.ctx, d) != nil {
			return
		}
	}
}

// StandbyState is State while the camera stands by: closed because
// nobody needs it, last opened without a fault, and (with a Probe) found
// present at the last check.
const StandbyState = "standby: closed while not needed"

// standby keeps the source closed until SetActive(true) (nil), Close
// (the context's error) or a failed Probe (its error).
func (r *Resilient) standby() error {
	r.setState(StandbyState)
	var probe <-chan time.Time
	if r.cfg.Probe != nil {
		t := time.NewTicker(r.cfg.ProbeEvery)
		defer t.Stop()
		probe = t.C
	}
	for {
		r.mu.Lock()
		active := r.active
		r.mu.Unlock()
		if active {
			return nil
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-r.wake:
		case <-probe:
			if err := r.cfg.Probe(); err != nil {
				return err
			}
		}
	}
}

// SetActive opens the camera (true) or closes it until it is needed
// again (false): a call or a viewer wants frames, or nobody does. While
// inactive the camera stands by (see StandbyState) and Read blocks. A
// camera that is down is still opened on the backoff schedule while
// inactive, and closed again at once when that works. It does not
// block; any goroutine may call it.
func (r *Resilient) SetActive(on bool) {
	r.mu.Lock()
	changed := r.active != on
	r.active = on
	stop := r.stopSrc
	r.mu.Unlock()
	if !changed {
		return
	}
	if !on && stop != nil {
		stop()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// describe names a source's format for State.
func describe(src Source) string {
	if d, ok := src.(describer); ok {
		if s := d.Describe(); s != "" {
			return s
		}
	}
	f := src.Format()
	return fmt.Sprintf("%dx%d %d fps", f.Width, f.Height, f.FPS)
}

// pump reads src into the slot until it fails, ctx ends (Reopen) or Close.
func (r *Resilient) pump(ctx context.Context, src Source) error {
	for {
		f, err := src.Read(ctx)
		if err != nil {
			return err
		}
		r.mu.Lock()
		if r.slot != nil {
			r.replaced.Add(1)
		}
		r.slot = &f
		r.mu.Unlock()
		select {
		case r.ready <- struct{}{}:
		default:
		}
	}
}

// closeSource closes src and folds its counters into the base.
func (r *Resilient) closeSource(src Source) {
	err := src.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := src.(statser); ok {
		st := s.Stats()
		r.base.Skipped += st.Skipped
		r.base.Broken += st.Broken
	}
	if r.src == src {
		r.src = nil
	}
	r.slot = nil // a frame from before a failure is not worth showing
	if err != nil {
		r.log.Warn("closing camera", "err", err)
	}
	r.closeErr = err
}

// setState records and reports a new state.
func (r *Resilient) setState(s string) {
	r.mu.Lock()
	changed := s != r.state
	r.state = s
	r.mu.Unlock()
	if !changed {
		return
	}
	if len(s) >= 4 && s[:4] == "down" {
		r.log.Warn("camera " + s)
	} else {
		r.log.Info("camera " + s)
	}
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(s)
	}
}

// SetQuality sets the JPEG quality (clamped to 1..100) of the frames the
// open source encodes, and of every source opened later; q <= 0 only
// asks. It reports whether the camera's frames are encoded here (the
// last source opened said so; false before any was). It does not block;
// any goroutine may call it.
func (r *Resilient) SetQuality(q int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if q > 0 {
		r.quality = clampQuality(q)
	}
	if qs, ok := r.src.(QualitySetter); ok {
		r.encodes = qs.SetQuality(q)
	}
	return r.encodes
}

// Reopen closes the open source and opens one again at once, without
// counting a failure or backing off: for when what the open function does
// has changed (another format). It does not block; any goroutine may call
// it.
func (r *Resilient) Reopen() {
	r.mu.Lock()
	r.reopen = true
	stop := r.stopSrc
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// State describes the camera now: "starting", "ok 640x480 MJPEG 30 fps",
// StandbyState, or "down: <error>; retrying in 4s". Safe from any
// goroutine.
func (r *Resilient) State() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Read blocks until a frame not returned before is available, ctx ends
// (ctx.Err()) or Close (ErrClosed); it never returns a camera failure, it
// waits for the camera to come back. One reader at a time.
func (r *Resilient) Read(ctx context.Context) (media.Frame, error) {
	for {
		select {
		case <-r.closed:
			return media.Frame{}, ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return media.Frame{}, err
		}
		r.mu.Lock()
		f := r.slot
		r.slot = nil
		r.mu.Unlock()
		if f != nil {
			f.Seq = r.seq
			r.seq++
			r.delivered.Add(1)
			return *f, nil
		}
		select {
		case <-r.ready:
		case <-ctx.Done():
			return media.Frame{}, ctx.Err()
		case <-r.closed:
			return media.Frame{}, ErrClosed
		}
	}
}

// Format returns the format of the open source, else of the last one, else
// ResilientConfig.Format. Safe from any goroutine.
func (r *Resilient) Format() media.VideoFormat {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.format
}

// Stats returns counters; safe from any goroutine.
func (r *Resilient) Stats() ResilientStats {
	r.mu.Lock()
	st := r.base
	src := r.src
	r.mu.Unlock()
	if s, ok := src.(statser); ok {
		live := s.Stats()
		st.Skipped += live.Skipped
		st.Broken += live.Broken
	}
	st.Captured = r.delivered.Load()
	st.Skipped += r.replaced.Load()
	return ResilientStats{Stats: st, Opens: r.opens.Load(), Failures: r.failures.Load()}
}

// Close stops retrying, closes the open source and waits for the owner
// goroutine; a blocked Read returns ErrClosed. It does not wait out a
// backoff. Safe from any goroutine; idempotent, and every call returns
// after the source is closed. The error is from the last source's Close.
func (r *Resilient) Close() error {
	r.once.Do(func() {
		close(r.closed)
		r.cancel()
	})
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeErr
}
