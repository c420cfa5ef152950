// Package gpio gives the box's push button and LED their meaning: debounced
// press and long-press events, and LED patterns; and drives plain output
// lines such as the door opener's relay. Simulated devices stand in for
// all of them without hardware. Drivers for real pins feed Debouncer with
// edges and drive Blinker with a pin setter.
package gpio

import (
	"fmt"
	"strings"
)

// Event is what the user did with the button.
type Event int

// Button events.
const (
	Press     Event = iota + 1 // released before the long-press time
	LongPress                  // held for the long-press time; sent while still held
)

func (e Event) String() string {
	switch e {
	case Press:
		return "press"
	case LongPress:
		return "long-press"
	}
	return fmt.Sprintf("Event(%d)", int(e))
}

// Button delivers debounced events. Events returns the same channel every
// time; it is closed when the button is closed. Close is idempotent.
type Button interface {
	Events() <-chan Event
	Close() error
}

// Pattern is what the LED shows. The zero value is Off.
type Pattern int

// LED patterns.
const (
	Off        Pattern = iota
	On                 // steady
	SlowBlink          // 1 Hz, half on
	FastBlink          // 4 Hz, half on
	ErrorBlink         // two short flashes, then a pause; once a second
	PairBlink          // 8 Hz, half on: the pairing window is open
	DoorBlink          // 300 ms on, 100 ms off: the door opener's relay is pulsed
)

var patternNames = [...]string{
	Off:        "off",
	On:         "on",
	SlowBlink:  "slow-blink",
	FastBlink:  "fast-blink",
	ErrorBlink: "error-blink",
	PairBlink:  "pair-blink",
	DoorBlink:  "door-blink",
}

func (p Pattern) String() string {
	if p >= 0 && int(p) < len(patternNames) {
		return patternNames[p]
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

// ParsePattern reads a pattern name as String writes it, in any case.
func ParsePattern(s string) (Pattern, error) {
	for p, name := range patternNames {
		if strings.EqualFold(s, name) {
			return Pattern(p), nil
		}
	}
	return Off, fmt.Errorf("gpio: unknown LED pattern %q (want one of %s)", s, strings.Join(patternNames[:], ", "))
}

// LED shows a pattern. Set never blocks and may be called from any
// goroutine; Pattern returns the last pattern set. Close turns the LED off
// and is idempotent.
type LED interface {
	Set(p Pattern)
	Pattern() Pattern
	Close() error
}
