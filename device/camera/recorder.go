package camera

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/callbox/callbox/stream/media"
)

// ErrFull is returned by Recorder.Write once the size cap is reached.
var ErrFull = errors.New("camera: recorder reached its size limit")

// RecorderStats counts what a Recorder did.
type RecorderStats struct {
	Frames  uint64 // frames written
	Bytes   int64  // bytes written
	Dropped uint64 // frames not written: over the cap or not a valid JPEG
}

// Recorder appends frames to an MJPEG file (JPEGs back to back) that Replay
// and ReadMJPEG can read. Safe for concurrent use.
type Recorder struct {
	path string
	max  int64

	mu     sync.Mutex
	f      *os.File
	stats  RecorderStats
	full   bool
	err    error // sticky write error: the file may end in a partial frame
	closed bool
}

// NewRecorder creates (or truncates) path. maxBytes caps the file size;
// 0 means no cap. Once a frame does not fit, writing stops for good so the
// recording has no gaps in the middle.
func NewRecorder(path string, maxBytes int64) (*Recorder, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("camera: recorder: max bytes %d is negative (0 for no limit)", maxBytes)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("camera: recorder: %w", err)
	}
	return &Recorder{path: path, max: maxBytes, f: f}, nil
}

// Write appends one frame, trimmed to its EOI. It returns ErrFull (and
// counts the frame as dropped) once the cap is reached, and the Trim error
// for a frame that is not a valid JPEG.
func (r *Recorder) Write(f media.Frame) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return fmt.Errorf("camera: recorder %s: %w", r.path, os.ErrClosed)
	case r.err != nil:
		return r.err
	}
	b, err := Trim(f.JPEG)
	if err != nil {
		r.stats.Dropped++
		return fmt.Errorf("camera: recorder %s: frame %d: %w", r.path, f.Seq, err)
	}
	if r.full || (r.max > 0 && r.stats.Bytes+int64(len(b)) > r.max) {
		r.full = true
		r.stats.Dropped++
		return ErrFull
	}
	n, err := r.f.Write(b)
	r.stats.Bytes += int64(n)
	if err != nil {
		r.err = fmt.Errorf("camera: recorder %s: %w", r.path, err)
		return r.err
	}
	r.stats.Frames++
	return nil
}

// Stats returns the counters.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close closes the file. Idempotent.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("camera: recorder %s: close: %w", r.path, err)
	}
	return nil
}
