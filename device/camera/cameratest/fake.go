// Package cameratest provides a fake camera whose frames and errors a test
// injects through channels.
package cameratest

import (
	"context"
	"sync"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/stream/media"
)

// Fake is a camera.Source driven by a test. Each value sent on Frames or
// Errs is returned by one Read. The channels are unbuffered, so a send
// completes only when a Read takes it: the test knows the reader got it.
type Fake struct {
	Frames chan media.Frame
	Errs   chan error

	format media.VideoFormat
	done   chan struct{}
	once   sync.Once
}

var _ camera.Source = (*Fake)(nil)

// New returns a fake camera reporting format.
func New(format media.VideoFormat) *Fake {
	return &Fake{
		Frames: make(chan media.Frame),
		Errs:   make(chan error),
		format: format,
		done:   make(chan struct{}),
	}
}

// Read returns the next injected frame or error; it blocks until one is
// sent, ctx ends (ctx.Err()) or the fake is closed (camera.ErrClosed).
func (f *Fake) Read(ctx context.Context) (media.Frame, error) {
	select {
	case <-f.done:
		return media.Frame{}, camera.ErrClosed
	default:
	}
	select {
	case fr := <-f.Frames:
		return fr, nil
	case err := <-f.Errs:
		return media.Frame{}, err
	case <-ctx.Done():
		return media.Frame{}, ctx.Err()
	case <-f.done:
		return media.Frame{}, camera.ErrClosed
	}
}

// Format returns the format given to New.
func (f *Fake) Format() media.VideoFormat { return f.format }

// Close unblocks a pending Read. Idempotent.
func (f *Fake) Close() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

// Closed reports whether Close was called.
func (f *Fake) Closed() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}
