package main

import (
	"context"
	"github.com/callbox/callbox/internal/rings"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/web"
)

// webBackend is what the web page sees of the daemon.
type webBackend struct{ d *daemon }

func (b webBackend) Status() control.Status { return b.d.status() }

func (b webBackend) Latest(which web.Stream) ([]byte, uint64, <-chan struct{}) {
	if which == web.Peer {
		return b.d.sink.frames.Get()
	}
	return b.d.self.Get()
}

// Watch keeps the camera open while someone watches the self view (the
// page shows it, or a player streams /self.mjpg).
func (b webBackend) Watch(which web.Stream) func() {
	if which != web.Self {
		return func() {}
	}
	return b.d.video.hold("web viewer")
}

func (b webBackend) Call(ctx context.Context, target string) error {
	return b.d.callTarget(ctx, target)
}

func (b webBackend) Hangup(ctx context.Context) error { return b.d.phone.Hangup(ctx) }

// Press is the button, pressed as `callbox press` does.
func (b webBackend) Press(ctx context.Context, long bool) error {
	return b.d.pressButton(ctx, 0, long)
}

// Rings lists who rang, for the page.
func (b webBackend) Rings() ([]rings.Ring, error) { return b.d.rings.List() }

// RingPicture is one ring's picture.
func (b webBackend) RingPicture(id string) ([]byte, error) { return b.d.rings.Picture(id) }
