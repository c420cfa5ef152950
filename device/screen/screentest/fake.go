// Package screentest is a fake display for tests and for running the
// daemon without a screen: an in-memory framebuffer whose Open can be
// made to fail.
package screentest

import (
	"errors"
	"sync"

	"github.com/callbox/callbox/device/screen"
)

// ErrNoDisplay is what Open returns while Missing is set.
var ErrNoDisplay = errors.New("screentest: no display")

// Display is an in-memory screen. Read its pixels (FB) only when the
// Screen drawing on it is closed, or after its Stats showed the draw you
// wait for and nothing else is pending.
type Display struct {
	FB *screen.Framebuffer

	mu      sync.Mutex
	missing bool
	opens   int
	closes  int
}

// New makes a w x h display in format f, rows stride bytes apart (0:
// packed).
func New(w, h, stride int, f screen.PixelFormat) (*Display, error) {
	fb, err := screen.NewFramebuffer(w, h, stride, f)
	if err != nil {
		return nil, err
	}
	return &Display{FB: fb}, nil
}

// SetMissing makes Open fail with ErrNoDisplay (true) or succeed again.
func (d *Display) SetMissing(m bool) {
	d.mu.Lock()
	d.missing = m
	d.mu.Unlock()
}

// Open is a screen.New open function: the display itself, or
// ErrNoDisplay while missing.
func (d *Display) Open() (screen.Display, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.missing {
		return nil, ErrNoDisplay
	}
	d.opens++
	return (*opened)(d), nil
}

// Counts is how often the display was opened and closed.
func (d *Display) Counts() (opens, closes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opens, d.closes
}

type opened Display

func (o *opened) Framebuffer() *screen.Framebuffer { return o.FB }

func (o *opened) Close() error {
	o.mu.Lock()
	o.closes++
	o.mu.Unlock()
	return nil
}
