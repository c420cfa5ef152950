package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/callbox/callbox/stream/media"
)

// ErrNoFrames is returned when an MJPEG file holds no valid frame.
var ErrNoFrames = errors.New("camera: no valid frame in file")

// Replay plays an MJPEG file as a camera, paced like Synthetic. Frames are
// returned byte for byte as stored; Seq and Time are those of the replay.
// Broken or oversized frames are skipped and counted in Stats.Broken. Slots
// missed by a late reader are counted as skipped, but no file frame is
// thrown away for them: a replay shows every stored frame in order.
type Replay struct {
	path   string
	loop   bool
	format media.VideoFormat
	done   chan struct{}
	once   sync.Once

	captured, skipped, broken atomic.Uint64

	// Reader state: Source allows one reader at a time.
	pace    pacer
	seq     uint32
	pending []byte // frame read from the file but not yet returned

	mu     sync.Mutex // guards the file against Close during a Read
	f      *os.File
	sp     *splitter
	closed bool
	good   bool // a valid frame was seen in the current pass
}

var _ Source = (*Replay)(nil)

// NewReplay opens an MJPEG file for replay at fps frames per second (1..60).
// At the end of the file it starts over when loop is set, else Read returns
// io.EOF. The frame size comes from the first valid frame.
func NewReplay(path string, fps int, loop bool) (*Replay, error) {
	if fps < 1 || fps > 60 {
		return nil, fmt.Errorf("camera: replay: fps %d out of range 1..60", fps)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("camera: replay: %w", err)
	}
	r := &Replay{
		path: path,
		loop: loop,
		done: make(chan struct{}),
		pace: pacer{fps: int64(fps)},
		f:    f,
		sp:   newSplitter(f, MaxFrameSize),
	}
	first, err := r.nextFrame(false)
	if err != nil {
		f.Close()
		if errors.Is(err, io.EOF) {
			err = ErrNoFrames
		}
		return nil, fmt.Errorf("camera: replay %s: %w", path, err)
	}
	w, h, ok := Size(first)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("camera: replay %s: first frame: %w: no frame header", path, ErrMalformed)
	}
	r.pending = first
	r.format = media.VideoFormat{Width: w, Height: h, FPS: fps}
	return r, nil
}

// nextFrame returns a copy of the next valid frame, skipping and counting
// broken ones, starting over at the end of the file when loop is set.
func (r *Replay) nextFrame(loop bool) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.closed {
			return nil, ErrClosed
		}
		b, err := r.sp.next()
		switch {
		case err == nil:
			r.good = true
			return bytes.Clone(b), nil
		case errors.Is(err, errBroken):
			r.broken.Add(1)
		case err == io.EOF && loop && r.good:
			if _, err := r.f.Seek(0, io.SeekStart); err != nil {
				return nil, fmt.Errorf("camera: replay %s: rewind: %w", r.path, err)
			}
			r.sp.reset(r.f)
			r.good = false
		case err == io.EOF && loop:
			return nil, fmt.Errorf("camera: replay %s: %w", r.path, ErrNoFrames)
		case err == io.EOF:
			return nil, io.EOF
		default:
			return nil, fmt.Errorf("camera: replay %s: %w", r.path, err)
		}
	}
}

// Read waits for the next capture slot and returns the next stored frame,
// or io.EOF after the last one when not looping.
func (r *Replay) Read(ctx context.Context) (media.Frame, error) {
	select {
	case <-r.done:
		return media.Frame{}, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return media.Frame{}, err
	}
	if r.pending == nil {
		b, err := r.nextFrame(r.loop)
		if err != nil {
			return media.Frame{}, err
		}
		r.pending = b
	}
	// The frame stays pending if the wait is cut short.
	t, skipped, err := r.pace.wait(ctx, r.done)
	if err != nil {
		return media.Frame{}, err
	}
	r.skipped.Add(skipped)
	f := media.Frame{Seq: r.seq, Time: t, JPEG: r.pending}
	r.pending = nil
	r.seq++
	r.captured.Add(1)
	return f, nil
}

// RestartClock starts the frame clock again at the next Read, as
// Synthetic.RestartClock does; the replay goes on from where it was.
// Call it from the reader's goroutine.
func (r *Replay) RestartClock() { r.pace.restart() }

// Format returns the first frame's size and the replay rate.
func (r *Replay) Format() media.VideoFormat { return r.format }

// Stats returns counters; safe from any goroutine.
func (r *Replay) Stats() Stats {
	return Stats{Captured: r.captured.Load(), Skipped: r.skipped.Load(), Broken: r.broken.Load()}
}

// Close stops the replay and closes the file; a blocked Read returns
// ErrClosed. Idempotent; it waits for a file read in progress.
func (r *Replay) Close() error {
	var err error
	r.once.Do(func() {
		close(r.done)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		if cerr := r.f.Close(); cerr != nil {
			err = fmt.Errorf("camera: replay %s: close: %w", r.path, cerr)
		}
	})
	return err
}
