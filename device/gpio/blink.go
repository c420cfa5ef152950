package gpio

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// step is one phase of a pattern: a level held for a time (0 = forever).
type step struct {
	on bool
	d  time.Duration
}

// steps returns the cycle a pattern repeats. Unknown patterns show as Off.
func (p Pattern) steps() []step {
	const ms = time.Millisecond
	switch p {
	case On:
		return []step{{on: true}}
	case SlowBlink:
		return []step{{true, 500 * ms}, {false, 500 * ms}}
	case FastBlink:
		return []step{{true, 125 * ms}, {false, 125 * ms}}
	case PairBlink:
		return []step{{true, 62500 * time.Microsecond}, {false, 62500 * time.Microsecond}}
	case DoorBlink:
		return []step{{true, 300 * ms}, {false, 100 * ms}}
	case ErrorBlink:
		return []step{{true, 100 * ms}, {false, 100 * ms}, {true, 100 * ms}, {false, 700 * ms}}
	}
	return []step{{on: false}}
}

// Blinker drives an on/off output with a Pattern from one goroutine. It
// implements LED for any output, real or simulated.
type Blinker struct {
	set  func(on bool) error
	wake chan struct{} // capacity 1: a pending wake-up already covers newer Sets
	done chan struct{}
	exit chan struct{}
	once sync.Once

	errs     atomic.Uint64
	closeErr error

	mu     sync.Mutex
	p      Pattern
	closed bool
}

var _ LED = (*Blinker)(nil)

// NewBlinker starts driving set (which must not be nil) with the Off
// pattern. set is only ever called from the Blinker's goroutine.
func NewBlinker(set func(on bool) error) *Blinker {
	b := &Blinker{
		set:  set,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		exit: make(chan struct{}),
	}
	go b.run()
	return b
}

// Set changes the pattern; setting the one already shown keeps its phase.
// It never blocks. After Close it does nothing.
func (b *Blinker) Set(p Pattern) {
	b.mu.Lock()
	if !b.closed {
		b.p = p
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Pattern returns the last pattern set (Off after Close).
func (b *Blinker) Pattern() Pattern {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.p
}

// Errors counts failed calls of the output function.
func (b *Blinker) Errors() uint64 { return b.errs.Load() }

// Close stops the goroutine and turns the output off, returning the error
// of that last call. Idempotent; every call waits and returns the same.
func (b *Blinker) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		b.closed, b.p = true, Off
		b.mu.Unlock()
		close(b.done)
		<-b.exit
	})
	return b.closeErr
}

func (b *Blinker) run() {
	defer close(b.exit)
	var (
		shown = Off
		cycle = shown.steps()
		i     int
		t     = time.NewTimer(time.Hour)
		tc    <-chan time.Time // nil while the current step lasts forever
	)
	defer t.Stop()
	t.Stop()
	enter := func(k int) {
		i = k
		b.drive(cycle[i].on)
		if cycle[i].d > 0 {
			t.Reset(cycle[i].d)
			tc = t.C
		} else {
			t.Stop()
			tc = nil
		}
	}
	enter(0)
	for {
		select {
		case <-b.done:
			if err := b.drive(false); err != nil {
				b.closeErr = fmt.Errorf("gpio: led off: %w", err)
			}
			return
		case <-b.wake:
			if p := b.Pattern(); p != shown {
				shown, cycle = p, p.steps()
				enter(0)
			}
		case <-tc:
			enter((i + 1) % len(cycle))
		}
	}
}

func (b *Blinker) drive(on bool) error {
	err := b.set(on)
	if err != nil {
		b.errs.Add(1)
	}
	return err
}
