// Package door drives a door opener: a relay on a GPIO output line,
// energised for a set time (a pulse) to release the door's strike. One
// pulse at a time, and a minimum gap from the end of one pulse to the
// start of the next: a request inside either is refused, with the reason.
// It keeps who opened the door last and who was refused, and never leaves
// the relay energised on purpose: the line is driven inactive when the
// opener is made, at the end of each pulse (again every second while
// that fails) and on Close.
package door

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/callbox/callbox/device/gpio"
)

// Limits of Config.
const (
	MinPulse = time.Second
	MaxPulse = 10 * time.Second
	MaxGap   = 10 * time.Minute
)

// retryOff is how soon a failed end of a pulse is tried again.
const retryOff = time.Second

// Why Open refused; its error wraps one of these and says more.
var (
	ErrBusy    = errors.New("busy")     // a pulse is under way
	ErrTooSoon = errors.New("too soon") // inside the minimum gap after the last pulse
	ErrFault   = errors.New("fault")    // the line could not be driven
	ErrClosed  = errors.New("closed")   // the opener is closed (the daemon is stopping)
)

// Config shapes an Opener.
type Config struct {
	Pulse time.Duration // how long the relay is energised, MinPulse..MaxPulse
	Gap   time.Duration // the least time from the end of a pulse to the start of the next, 0..MaxGap
	// OnChange is called after a pulse started or ended (or its end
	// failed), from Open's goroutine or the pulse's timer. It must not
	// block; it may call Status.
	OnChange func()
	Logger   *slog.Logger // nil discards
}

// Validate names the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.Pulse < MinPulse || c.Pulse > MaxPulse:
		return fmt.Errorf("door: pulse %v out of range %v..%v", c.Pulse, MinPulse, MaxPulse)
	case c.Gap < 0 || c.Gap > MaxGap:
		return fmt.Errorf("door: gap %v out of range 0..%v", c.Gap, MaxGap)
	}
	return nil
}

// Event is an opening or a refusal: when, who asked, and for a refusal
// why.
type Event struct {
	At  time.Time `json:"at"`
	Who string    `json:"who"`
	Why string    `json:"why,omitempty"`
}

// Status is the opener's state and record.
type Status struct {
	// Active says the relay is energised: the line is at its active
	// level (the level last driven; an output line is never read back).
	Active bool `json:"active"`
	// Until is when the pulse ends while Active, else when the next
	// may start; zero when one may start now.
	Until       time.Time `json:"until,omitzero"`
	Openings    uint64    `json:"openings"`
	Refusals    uint64    `json:"refusals"`
	Last        *Event    `json:"last,omitempty"`         // the last opening
	LastRefusal *Event    `json:"last_refusal,omitempty"` // the last refusal
	// Fault is the line's last error, "" once it was driven again.
	Fault string `json:"fault,omitempty"`
}

// Opener pulses a door opener's relay. Safe for concurrent use; Close
// stops it.
type Opener struct {
	out gpio.Output
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	st     Status
	next   time.Time   // the earliest start of the next pulse
	timer  *time.Timer // the end of the pulse under way (or its retry)
	closed bool
	timers sync.WaitGroup // pulse ends scheduled or running
}

// New drives out inactive and returns an opener for it. A line that
// cannot be driven is not an error here (the box works without its
// door): Status says so, and each Open tries it again.
func New(out gpio.Output, cfg Config) (*Opener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	o := &Opener{out: out, cfg: cfg, log: cfg.Logger}
	if err := out.Set(false); err != nil {
		o.st.Fault = err.Error()
	}
	return o, nil
}

// Open starts a pulse for who, or refuses: ErrBusy while a pulse is under
// way, ErrTooSoon inside the minimum gap after one, ErrFault when the line
// cannot be driven (it is then driven off again), ErrClosed after Close.
// The error says more: "too soon: the door opens again in 4s (at least 5s
// between openings)". It returns as soon as the relay is energised; the
// pulse ends by itself.
func (o *Opener) Open(who string) error {
	o.mu.Lock()
	now := time.Now()
	var refused error
	switch {
	case o.closed:
		refused = fmt.Errorf("%w: the door opener is shutting down", ErrClosed)
	case o.st.Active:
		refused = fmt.Errorf("%w: the door is being opened (%v left of a %v pulse)", ErrBusy, ceilSecond(o.st.Until.Sub(now)), o.cfg.Pulse)
	case now.Before(o.next):
		refused = fmt.Errorf("%w: the door opens again in %v (at least %v between openings)", ErrTooSoon, ceilSecond(o.next.Sub(now)), o.cfg.Gap)
	default:
		if err := o.out.Set(true); err != nil {
			o.st.Fault = err.Error()
			refused = fmt.Errorf("%w: %v", ErrFault, err)
			if err := o.out.Set(false); err != nil {
				o.log.Error("door relay line failed; it may be energised", "err", err)
			}
		}
	}
	if refused != nil {
		o.st.Refusals++
		o.st.LastRefusal = &Event{At: now, Who: who, Why: refused.Error()}
		o.mu.Unlock()
		return refused
	}
	o.st.Fault = ""
	o.st.Active = true
	o.st.Until = now.Add(o.cfg.Pulse)
	o.st.Openings++
	o.st.Last = &Event{At: now, Who: who}
	o.timers.Add(1)
	o.timer = time.AfterFunc(o.cfg.Pulse, o.end)
	o.mu.Unlock()
	o.cfg.OnChange()
	return nil
}

// end ends the pulse: the relay off, then the gap. While the line cannot
// be driven off it tries again every second and says so.
func (o *Opener) end() {
	defer o.timers.Done()
	o.mu.Lock()
	if o.closed || !o.st.Active {
		o.mu.Unlock()
		return // Close drives it off
	}
	if err := o.out.Set(false); err != nil {
		o.st.Fault = "the relay may still be energised: " + err.Error()
		o.log.Error("door relay could not be switched off; trying again", "err", err, "in", retryOff)
		o.timers.Add(1)
		o.timer = time.AfterFunc(retryOff, o.end)
		o.mu.Unlock()
		o.cfg.OnChange()
		return
	}
	now := time.Now()
	o.st.Active = false
	o.st.Fault = ""
	o.next = now.Add(o.cfg.Gap)
	o.st.Until = o.next
	o.timer = nil
	o.mu.Unlock()
	o.cfg.OnChange()
}

// Status is a snapshot of the opener.
func (o *Opener) Status() Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.st
	if !st.Active && !time.Now().Before(st.Until) {
		st.Until = time.Time{}
	}
	return st
}

// Close ends a pulse under way, drives the line off and releases it
// (gpio.Output.Close), and refuses every later Open. Idempotent; it
// returns the error of driving the line off.
func (o *Opener) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	if o.timer != nil && o.timer.Stop() {
		o.timers.Done() // its end will not run
	}
	o.timer = nil
	o.st.Active = false
	o.mu.Unlock()
	o.timers.Wait() // an end under way sees closed and leaves the line to us
	return o.out.Close()
}

// ceilSecond rounds d up to whole seconds, for people.
func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}
