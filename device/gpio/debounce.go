package gpio

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Edge is a raw level change of the button line.
type Edge struct {
	Pressed bool      // level after the change, already corrected for active-low wiring
	Time    time.Time // when it changed, on the time.Now clock
}

// DebounceConfig tunes a Debouncer. The zero value is valid.
type DebounceConfig struct {
	// Settle is how long the level must stay unchanged to count;
	// 0 means 30ms.
	Settle time.Duration
	// LongPress is how long a press must be held to be a long press;
	// 0 means 3s.
	LongPress time.Duration
}

// Validate reports a field outside its allowed range.
func (c DebounceConfig) Validate() error {
	if c.Settle < 0 || c.Settle > time.Second {
		return fmt.Errorf("gpio: debounce settle %v out of range 0..1s", c.Settle)
	}
	if c.LongPress < 0 || c.LongPress > time.Minute {
		return fmt.Errorf("gpio: debounce long press %v out of range 0..1m", c.LongPress)
	}
	if d := c.withDefaults(); d.LongPress <= d.Settle {
		return fmt.Errorf("gpio: debounce long press %v must be longer than settle %v", d.LongPress, d.Settle)
	}
	return nil
}

func (c DebounceConfig) withDefaults() DebounceConfig {
	if c.Settle == 0 {
		c.Settle = 30 * time.Millisecond
	}
	if c.LongPress == 0 {
		c.LongPress = 3 * time.Second
	}
	return c
}

// Debouncer turns raw level changes of a push button into Press and
// LongPress events. It holds no pins, so any driver can feed it.
type Debouncer struct {
	cfg     DebounceConfig
	dropped atomic.Uint64
}

// NewDebouncer returns a debouncer for cfg.
func NewDebouncer(cfg DebounceConfig) (*Debouncer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Debouncer{cfg: cfg.withDefaults()}, nil
}

// Dropped counts events that found out full.
func (d *Debouncer) Dropped() uint64 { return d.dropped.Load() }

// Run debounces edges into out until ctx ends (returning its error) or
// edges is closed (returning nil). It does not close out.
//
// A level counts once it has held for Settle after its last edge; shorter
// bounces and glitches are ignored. A press released before LongPress is a
// Press, sent when the release settles. A press held for LongPress (timed
// from the edge after which it held) sends LongPress at that moment, still
// held, and its release sends nothing.
//
// out is written without blocking: when it is full the event is dropped and
// counted (Dropped), because a stale button event is worse than a lost one.
// Run is one goroutine's loop; call it once at a time per Debouncer.
func (d *Debouncer) Run(ctx context.Context, edges <-chan Edge, out chan<- Event) error {
	var (
		stable, raw bool      // debounced and latest raw level (true = pressed)
		rawAt       time.Time // when raw last changed
		pressAt     time.Time // start of the debounced press
		longSent    bool      // LongPress already sent for this press

		settle, long   = stoppedTimer(), stoppedTimer()
		settleC, longC <-chan time.Time // nil while the timer is disarmed
	)
	defer settle.Stop()
	defer long.Stop()
	emit := func(e Event) {
		select {
		case out <- e:
		default:
			d.dropped.Add(1)
		}
	}
	armLong := func() {
		long.Reset(time.Until(pressAt.Add(d.cfg.LongPress)))
		longC = long.C
	}
	// settled runs when raw has held for the settle time.
	settled := func() {
		settleC = nil
		stable = raw
		if stable {
			pressAt, longSent = rawAt, false
			armLong()
			return
		}
		long.Stop()
		longC = nil
		switch {
		case longSent:
		case rawAt.Sub(pressAt) >= d.cfg.LongPress:
			emit(LongPress) // released just after the mark, seen only now
		default:
			emit(Press)
		}
	}

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()

		case e, ok := <-edges:
			if !ok {
				return nil
			}
			if e.Pressed == raw {
				continue // a repeated report, not a change
			}
			if settleC != nil && !e.Time.Before(rawAt.Add(d.cfg.Settle)) {
				// This loop ran late: the level before this edge had held
				// for the settle time (by the edges' own times) though its
				// timer has not been seen yet. It settled; a press and its
				// release read together are a press, not a bounce.
				settle.Stop()
				settled()
			}
			raw, rawAt = e.Pressed, e.Time
			if raw == stable { // bounced back before settling
				settle.Stop()
				settleC = nil
				if stable && !longSent && longC == nil {
					armLong() // the long-press mark passed while a release was pending
				}
				continue
			}
			settle.Reset(time.Until(rawAt.Add(d.cfg.Settle)))
			settleC = settle.C

		case <-settleC:
			settled()

		case <-longC:
			longC = nil
			// With a release pending, the release decides when it settles.
			if raw {
				longSent = true
				emit(LongPress)
			}
		}
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
