// Package camera provides video frame sources for callbox: V4L2 cameras
// through go4vl (MJPEG, or raw YUV encoded to JPEG; cgo builds), a wrapper
// that re-opens a camera that went away, a synthetic test camera that draws
// real JPEGs, replay of MJPEG files, a recorder, and the JPEG checks every
// driver's frames go through before they leave the box.
package camera

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/callbox/callbox/stream/media"
)

// Source is a camera. Read blocks until the next frame is captured or ctx
// ends. The returned JPEG is owned by the caller (copied out of any driver
// memory). One reader at a time; Format and Close may be called from any
// goroutine, and Close unblocks a pending Read with ErrClosed.
type Source interface {
	Read(ctx context.Context) (media.Frame, error)
	Format() media.VideoFormat
	Close() error
}

// Stats counts what a source did since it was opened.
type Stats struct {
	Captured uint64 // frames returned by Read
	Skipped  uint64 // schedule slots missed because Read was called late
	Broken   uint64 // frames rejected: malformed, truncated or over MaxFrameSize
}

// MaxFrameSize is the largest JPEG a source hands out; bigger frames are
// counted as broken and skipped so one bad frame cannot exhaust memory.
const MaxFrameSize = 8 << 20

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("camera: source closed")

// QualitySetter is a camera that can change the JPEG quality of its frames
// while it runs: one whose JPEGs callbox encodes itself (the test pattern,
// a raw V4L2 format). A camera's own MJPEG is passed through untouched.
type QualitySetter interface {
	// SetQuality sets the JPEG quality (clamped to 1..100) of the frames
	// encoded from now on, and reports whether the frames are encoded
	// here, so that the quality counts (false: the camera's own JPEG is
	// passed through and q has no effect). q <= 0 changes nothing and only
	// asks. It does not block and is safe for concurrent use with Read.
	SetQuality(q int) bool
}

// clampQuality keeps a JPEG quality within 1..100.
func clampQuality(q int) int { return min(max(q, 1), 100) }

var (
	_ QualitySetter = (*Synthetic)(nil)
	_ QualitySetter = (*V4L2)(nil)
	_ QualitySetter = (*Resilient)(nil)
)

// counts are a live camera's frame counters, and the one warning about a
// broken frame (later ones are logged at debug level only).
type counts struct {
	captured, skipped, broken atomic.Uint64
	warned                    atomic.Bool
}

// noteBroken counts a rejected frame and logs the first one.
func (k *counts) noteBroken(log *slog.Logger, err error) {
	n := k.broken.Add(1)
	if !k.warned.Swap(true) {
		log.Warn("dropping broken frame (later ones are only counted)", "err", err)
	} else {
		log.Debug("dropping broken frame", "err", err, "broken", n)
	}
}

// stats is the counters as Stats.
func (k *counts) stats() Stats {
	return Stats{Captured: k.captured.Load(), Skipped: k.skipped.Load(), Broken: k.broken.Load()}
}
