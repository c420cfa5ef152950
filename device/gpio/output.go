package gpio

import (
	"errors"
	"fmt"
	"sync"

	pgpio "periph.io/x/conn/v3/gpio"
)

// Output is an output line that code switches on and off, such as the
// door opener's relay. Set drives the line at once and says whether that
// worked. Close drives it off and releases it; later Sets fail. Safe for
// concurrent use.
type Output interface {
	Set(on bool) error
	Close() error
}

// ErrClosed is what Set returns on a closed Output.
var ErrClosed = errors.New("gpio: output closed")

// PinOutput is an Output on a GPIO line. The line is only ever written:
// reading an output line (Read, Func) would turn it into an input on
// gpioioctl, so the level it shows is the level last driven.
type PinOutput struct {
	pin     pgpio.PinOut
	name    string
	cfg     PinConfig
	release func()

	mu     sync.Mutex
	closed bool
}

var _ Output = (*PinOutput)(nil)

// newPinOutput drives pin off (inactive: low, or high when ActiveLow)
// and returns it as an Output. release, if not nil, is called once Close
// has driven it off.
func newPinOutput(pin pgpio.PinOut, name string, cfg PinConfig, release func()) (*PinOutput, error) {
	if err := cfg.outputPull(); err != nil {
		return nil, err
	}
	if err := pin.Out(cfg.level(false)); err != nil {
		return nil, fmt.Errorf("gpio: output %s: drive it off: %w", name, err)
	}
	return &PinOutput{pin: pin, name: name, cfg: cfg, release: release}, nil
}

// Name is the line as logs show it: "GPIO22 (gpiochip0:22)".
func (o *PinOutput) Name() string { return o.name }

// Set drives the line to its active level (on) or its inactive one.
func (o *PinOutput) Set(on bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("%w: %s", ErrClosed, o.name)
	}
	if err := o.pin.Out(o.cfg.level(on)); err != nil {
		return fmt.Errorf("gpio: output %s: drive it %s: %w", o.name, onOff(on), err)
	}
	return nil
}

// Close drives the line off and releases it. Idempotent; only the first
// call can fail.
func (o *PinOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	err := o.pin.Out(o.cfg.level(false))
	if err != nil {
		err = fmt.Errorf("gpio: output %s: drive it off: %w", o.name, err)
	}
	if o.release != nil {
		o.release()
	}
	return err
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// SimOutput is an Output whose level lives in memory: the daemon's "sim"
// lines and tests. Fail makes it fail like a line that went away.
type SimOutput struct {
	mu      sync.Mutex
	on      bool
	changes uint64
	fail    error
	closed  bool
}

var _ Output = (*SimOutput)(nil)

// NewSimOutput returns a simulated output, off.
func NewSimOutput() *SimOutput { return &SimOutput{} }

// Set switches the level, unless Fail made it fail or it is closed.
func (o *SimOutput) Set(on bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.closed:
		return ErrClosed
	case o.fail != nil:
		return o.fail
	}
	if o.on != on {
		o.on = on
		o.changes++
	}
	return nil
}

// Level reports whether the output is on now.
func (o *SimOutput) Level() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.on
}

// Changes counts the level changes so far.
func (o *SimOutput) Changes() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changes
}

// Fail makes every later Set (and Close) fail with err; nil heals it.
func (o *SimOutput) Fail(err error) {
	o.mu.Lock()
	o.fail = err
	o.mu.Unlock()
}

// Close switches it off, unless it fails, and closes it. Idempotent.
func (o *SimOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	if o.fail != nil {
		return o.fail
	}
	if o.on {
		o.on = false
		o.changes++
	}
	return nil
}
