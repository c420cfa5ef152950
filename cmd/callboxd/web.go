package main

import (
	"context"
	"errors"

	"github.com/callbox/callbox/device/gpio"
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

func (b webBackend) Call(ctx context.Context) error {
	peer, err := b.d.defaultPeer()
	if err != nil {
		return err
	}
	return b.d.phone.Call(ctx, peer)
}

func (b webBackend) Hangup(ctx context.Context) error { return b.d.phone.Hangup(ctx) }

// Press is the button, pressed as `callbox press` does.
func (b webBackend) Press(ctx context.Context, long bool) error {
	ev := gpio.Press
	if long {
		ev = gpio.LongPress
	}
	if b.d.simBtn == nil {
		b.d.pressed(ctx, ev)
		return nil
	}
	if !b.d.simBtn.Press(long) {
		return errors.New("button events queue full")
	}
	return nil
}
