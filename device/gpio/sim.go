package gpio

import (
	"sync"
	"sync/atomic"
)

// SimButton is a button pressed by code: tests, the demo, and the
// daemon's simulated devices.
type SimButton struct {
	// events holds up to 4 presses; Press drops (and counts) when it is
	// full, since nobody is reading and old presses would act late.
	events  chan Event
	mu      sync.Mutex // orders Press against Close's close(events)
	closed  bool
	dropped atomic.Uint64
}

var _ Button = (*SimButton)(nil)

// NewSimButton returns a simulated button.
func NewSimButton() *SimButton {
	return &SimButton{events: make(chan Event, 4)}
}

// Press injects a Press, or a LongPress when long is set. It never blocks;
// it returns false if the event was dropped (queue full, or closed).
func (b *SimButton) Press(long bool) bool {
	e := Press
	if long {
		e = LongPress
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	select {
	case b.events <- e:
		return true
	default:
		b.dropped.Add(1)
		return false
	}
}

// Dropped counts presses lost to a full queue.
func (b *SimButton) Dropped() uint64 { return b.dropped.Load() }

// Events returns the event channel, closed by Close.
func (b *SimButton) Events() <-chan Event { return b.events }

// Close closes the event channel. Idempotent.
func (b *SimButton) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.events)
	}
	return nil
}

// SimLED is an LED whose level lives in memory.
type SimLED struct {
	*Blinker
	level atomic.Bool
}

var _ LED = (*SimLED)(nil)

// NewSimLED returns a simulated LED showing Off.
func NewSimLED() *SimLED {
	l := &SimLED{}
	l.Blinker = NewBlinker(func(on bool) error {
		l.level.Store(on)
		return nil
	})
	return l
}

// Level reports whether the LED is lit right now.
func (l *SimLED) Level() bool { return l.level.Load() }
