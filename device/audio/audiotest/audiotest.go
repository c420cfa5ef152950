// Package audiotest has fakes of audio.Source and audio.Speaker driven by the
// test itself: it sends the frames the microphone captures and pulls each
// speaker period, so no real time passes.
package audiotest

import (
	"context"
	"sync"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/stream/media"
)

// Source is a fake microphone. Read returns the frames the test sends on
// Frames, in order.
type Source struct {
	Fmt    media.AudioFormat
	Frames chan media.Audio // the test sends; its capacity is the capture backlog

	once      sync.Once
	closed    chan struct{}
	closeOnce sync.Once
}

var _ audio.Source = (*Source)(nil)

// NewSource returns a Source whose Frames holds up to depth unread frames.
func NewSource(f media.AudioFormat, depth int) *Source {
	return &Source{Fmt: f, Frames: make(chan media.Audio, depth)}
}

func (s *Source) done() chan struct{} {
	s.once.Do(func() { s.closed = make(chan struct{}) })
	return s.closed
}

// Read blocks until the test sends a frame, ctx ends or Close is called.
func (s *Source) Read(ctx context.Context) (media.Audio, error) {
	select {
	case <-s.done():
		return media.Audio{}, audio.ErrClosed
	default:
	}
	select {
	case a := <-s.Frames:
		return a, nil
	case <-ctx.Done():
		return media.Audio{}, ctx.Err()
	case <-s.done():
		return media.Audio{}, audio.ErrClosed
	}
}

// Format returns Fmt.
func (s *Source) Format() media.AudioFormat { return s.Fmt }

// Close makes Read return audio.ErrClosed. It is idempotent.
func (s *Source) Close() error {
	d := s.done()
	s.closeOnce.Do(func() { close(d) })
	return nil
}

// Speaker is a fake speaker: while Run is active, each Pull calls fill once
// and returns what it wrote. An error sent on Fail makes Run return it, as a
// failing device would.
type Speaker struct {
	Fmt    media.AudioFormat
	Period int        // values per fill; zero means one frame of Fmt
	Fail   chan error // optional

	once  sync.Once
	pulls chan chan []int16
}

var _ audio.Speaker = (*Speaker)(nil)

// NewSpeaker returns a Speaker pulling one frame of f per period.
func NewSpeaker(f media.AudioFormat) *Speaker {
	return &Speaker{Fmt: f, Fail: make(chan error, 1)}
}

func (s *Speaker) requests() chan chan []int16 {
	s.once.Do(func() { s.pulls = make(chan chan []int16) })
	return s.pulls
}

// Format returns Fmt.
func (s *Speaker) Format() media.AudioFormat { return s.Fmt }

// Run serves Pull until ctx ends (it returns nil) or an error arrives on Fail.
func (s *Speaker) Run(ctx context.Context, fill func(dst []int16)) error {
	n := s.Period
	if n == 0 {
		n = s.Fmt.FrameLen()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.Fail:
			return err
		case reply := <-s.requests():
			dst := make([]int16, n)
			fill(dst)
			reply <- dst
		}
	}
}

// Pull runs one period: it blocks until Run has called fill, and returns the
// values fill wrote.
func (s *Speaker) Pull(ctx context.Context) ([]int16, error) {
	reply := make(chan []int16, 1) // Run never waits on the reply
	select {
	case s.requests() <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case dst := <-reply:
		return dst, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
