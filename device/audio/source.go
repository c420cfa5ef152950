package audio

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// SourceStats counts what a simulated source delivered and dropped.
type SourceStats struct {
	Frames  uint64 // frames returned by Read
	Skipped uint64 // frames dropped because Read fell more than the backlog behind
}

// pacer releases frame n at start + (n+1)*period, when its last sample has
// been "captured"; start is the first Read. The schedule is absolute, so it
// never drifts. A reader that stalls gets at most backlog overdue frames back
// to back; older ones are skipped (a Seq gap), as a capture ring would overrun.
type pacer struct {
	format media.AudioFormat
	err    error                 // invalid format, returned by every Read
	gen    func([]int16, uint32) // writes frame idx; nil for silence
	sem    chan struct{}         // one Read at a time; waiting Reads queue on it
	done   chan struct{}         // closed by Close
	close  sync.Once
	timer  *time.Timer // guarded by sem
	start  time.Time   // guarded by sem
	next   uint64      // index of the next frame; guarded by sem
	frames atomic.Uint64
	skip   atomic.Uint64
}

func newPacer(f media.AudioFormat, gen func([]int16, uint32)) *pacer {
	f, err := format(f)
	return &pacer{
		format: f,
		err:    err,
		gen:    gen,
		sem:    make(chan struct{}, 1),
		done:   make(chan struct{}),
		timer:  stoppedTimer(),
	}
}

func (p *pacer) read(ctx context.Context) (media.Audio, error) {
	if p.err != nil {
		return media.Audio{}, p.err
	}
	select {
	case <-p.done:
		return media.Audio{}, ErrClosed
	default:
	}
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-ctx.Done():
		return media.Audio{}, ctx.Err()
	case <-p.done:
		return media.Audio{}, ErrClosed
	}
	period := p.format.FrameDuration()
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	// Frames before ready have been fully captured; keep only the newest
	// backlog of those not yet read.
	if ready := uint64(now.Sub(p.start) / period); ready > p.next+backlog {
		n := ready - backlog - p.next
		p.next += n
		p.skip.Add(n)
	}
	due := p.start.Add(time.Duration(p.next+1) * period)
	if err := wait(ctx, p.done, p.timer, due); err != nil {
		return media.Audio{}, err
	}
	idx := uint32(p.next)
	a := media.Audio{
		Seq:     idx,
		Time:    p.start.Add(time.Duration(p.next) * period),
		Samples: make([]int16, p.format.FrameLen()),
	}
	if p.gen != nil {
		p.gen(a.Samples, idx)
	}
	p.next++
	p.frames.Add(1)
	return a, nil
}

func (p *pacer) stats() SourceStats {
	return SourceStats{Frames: p.frames.Load(), Skipped: p.skip.Load()}
}

func (p *pacer) shut() error {
	p.close.Do(func() { close(p.done) })
	return nil
}

// TestSource is a simulated microphone producing the test signal in real time
// (see TestFrame). Frame n has Seq n, carries n in its index bits (and, modulo
// 315, in its marker tones), and its Time is the first Read's time plus n
// frame durations.
type TestSource struct{ p *pacer }

var _ Source = (*TestSource)(nil)

// NewTestSource returns a TestSource in format f (the zero value means
// media.DefaultAudio). If f is invalid, Read returns the error.
func NewTestSource(f media.AudioFormat) *TestSource {
	s := &TestSource{}
	s.p = newPacer(f, func(dst []int16, idx uint32) { testFrame(s.p.format, idx, dst) })
	return s
}

// NewTestSourceBlocks is NewTestSource whose frames are made of whole
// test frames of blockMs each (a divisor of f.FrameMs): frame n of a 20 ms
// source with 10 ms blocks holds test frames 2n and 2n+1 of the 10 ms
// signal, bit for bit. The daemon's simulated microphone sends the 10 ms
// signal so, whatever its audio.frame_ms, and the checks (Check,
// CheckCoded, and a peer's) read it with one format. If blockMs does not
// divide f.FrameMs, it is NewTestSource.
func NewTestSourceBlocks(f media.AudioFormat, blockMs int) *TestSource {
	if blockMs <= 0 || f.FrameMs <= blockMs || f.FrameMs%blockMs != 0 {
		return NewTestSource(f)
	}
	s := &TestSource{}
	s.p = newPacer(f, func(dst []int16, idx uint32) {
		b := s.p.format
		n := b.FrameMs / blockMs
		b.FrameMs = blockMs
		l := b.FrameLen()
		for i := range n {
			testFrame(b, idx*uint32(n)+uint32(i), dst[i*l:(i+1)*l])
		}
	})
	return s
}

// Read blocks until the next frame is due; see Source.
func (s *TestSource) Read(ctx context.Context) (media.Audio, error) { return s.p.read(ctx) }

// Format is the source's audio format.
func (s *TestSource) Format() media.AudioFormat { return s.p.format }

// Close makes Read return ErrClosed. It is idempotent.
func (s *TestSource) Close() error { return s.p.shut() }

// Stats may be called from any goroutine.
func (s *TestSource) Stats() SourceStats { return s.p.stats() }

// SilentSource stands in for a missing microphone: all-zero frames paced and
// numbered like a TestSource's.
type SilentSource struct{ p *pacer }

var _ Source = (*SilentSource)(nil)

// NewSilentSource returns a SilentSource in format f (the zero value means
// media.DefaultAudio). If f is invalid, Read returns the error.
func NewSilentSource(f media.AudioFormat) *SilentSource {
	return &SilentSource{p: newPacer(f, nil)}
}

// Read blocks until the next frame is due; see Source.
func (s *SilentSource) Read(ctx context.Context) (media.Audio, error) { return s.p.read(ctx) }

// Format is the source's audio format.
func (s *SilentSource) Format() media.AudioFormat { return s.p.format }

// Close makes Read return ErrClosed. It is idempotent.
func (s *SilentSource) Close() error { return s.p.shut() }

// Stats may be called from any goroutine.
func (s *SilentSource) Stats() SourceStats { return s.p.stats() }
