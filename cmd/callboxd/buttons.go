package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/call"
)

// extraButton is one [[button]]: a line whose press calls its peer or
// group, and an optional LED that shows calls with them.
type extraButton struct {
	n      int    // 1-based, in config order: `callbox press -button n`
	target string // a peer's or a group's name
	btn    gpio.Button
	sim    *gpio.SimButton // btn, when simulated or its line failed
	led    gpio.LED        // nil without one
	mu     sync.Mutex
	shown  gpio.Pattern
}

// openButtons opens the [[button]] lines and LEDs. A line that cannot be
// opened leaves a simulated button in its place (pressable with `callbox
// press -button N`) and is reported like the main button's.
func (d *daemon) openButtons() (problems []string) {
	g := d.cfg.GPIO
	for i, bc := range d.cfg.Buttons {
		b := &extraButton{n: i + 1, target: bc.Call}
		if bc.Line == "sim" {
			b.sim = gpio.NewSimButton()
			b.btn = b.sim
		} else {
			var btn gpio.Button
			pb, err := gpio.OpenButton(gpio.PinConfig{Line: bc.Line, ActiveLow: g.ButtonActiveLow, Pull: g.ButtonPull},
				gpio.DebounceConfig{Settle: time.Duration(g.DebounceMs) * time.Millisecond, LongPress: time.Duration(g.LongPressMs) * time.Millisecond},
				d.log)
			if err != nil {
				d.log.Error("button unusable", "component", "gpio", "button", b.n, "line", bc.Line, "err", err)
				problems = append(problems, fmt.Sprintf("button %d (%s) failed: %v", b.n, bc.Line, err))
				b.sim = gpio.NewSimButton()
				btn = b.sim
			} else {
				btn = pb
			}
			b.btn = btn
		}
		switch bc.LED {
		case "":
		case "sim":
			b.led = gpio.NewSimLED()
		default:
			led, err := gpio.OpenLED(gpio.PinConfig{Line: bc.LED, ActiveLow: g.LEDActiveLow})
			if err != nil {
				d.log.Error("LED unusable", "component", "gpio", "button", b.n, "line", bc.LED, "err", err)
				problems = append(problems, fmt.Sprintf("button %d's LED %s failed: %v", b.n, bc.LED, err))
			} else {
				b.led = led
			}
		}
		d.extra = append(d.extra, b)
	}
	return problems
}

// closeButtons closes the [[button]] lines; their LEDs go off.
func (d *daemon) closeButtons() {
	for _, b := range d.extra {
		b.btn.Close()
		if b.led != nil {
			b.led.Close()
		}
	}
}

// extraButtonLoop runs one [[button]]: a short press calls its target when
// idle and otherwise answers or hangs up, as the main button does; a long
// press does nothing (pairing is the main button's).
func (d *daemon) extraButtonLoop(ctx context.Context, b *extraButton) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-b.btn.Events():
			if !ok {
				return
			}
			if ev != gpio.Press {
				d.log.Info("long press of a call button: ignored (pairing is the main button's)", "component", "gpio", "button", b.n)
				continue
			}
			d.extraPressed(ctx, b)
		}
	}
}

// extraPressed is a short press of a [[button]]: in the pairing window it
// ends the window (as the main button's does), else it calls, answers or
// hangs up.
func (d *daemon) extraPressed(ctx context.Context, b *extraButton) {
	if st := d.pair.status(); d.pair.isOpen() || st.State == control.PairConfirm {
		d.pair.stop()
		return
	}
	if err := d.press(ctx, b.target); err != nil {
		d.log.Warn("button press did nothing", "component", "gpio", "button", b.n, "call", b.target, "err", err)
		d.panel.flash(gpio.ErrorBlink)
	}
}

// errNoButton is a press of a button that is not configured.
var errNoButton = errors.New("no button")

// pressButton presses button n as `callbox press -button n` and the web
// page do: 0 is the main button.
func (d *daemon) pressButton(ctx context.Context, n int, long bool) error {
	if n == 0 {
		ev := gpio.Press
		if long {
			ev = gpio.LongPress
		}
		if d.simBtn == nil {
			d.pressed(ctx, ev)
			return nil
		}
		if !d.simBtn.Press(long) {
			return errors.New("button events queue full")
		}
		return nil
	}
	if n < 0 || n > len(d.extra) {
		return fmt.Errorf("%w %d: %d configured besides the main one", errNoButton, n, len(d.extra))
	}
	b := d.extra[n-1]
	if b.sim == nil {
		// A GPIO line: act as its press would, as for the main button.
		if !long { // a long press of a call button does nothing
			d.extraPressed(ctx, b)
		}
		return nil
	}
	if !b.sim.Press(long) {
		return errors.New("button events queue full")
	}
	return nil
}

// showButtons sets each [[button]]'s LED: the call pattern while the call
// (or the group call) is with its target, off otherwise.
func (d *daemon) showButtons(st call.Status) {
	for _, b := range d.extra {
		if b.led == nil {
			continue
		}
		pat := gpio.Off
		if st.State != call.Idle && b.mine(st) {
			pat = d.panel.pattern(st.State, "")
		}
		b.mu.Lock()
		if pat != b.shown {
			b.shown = pat
			b.led.Set(pat)
		}
		b.mu.Unlock()
	}
}

// mine reports whether the call in st is with this button's target: the
// peer itself, or a group call of the target's group.
func (b *extraButton) mine(st call.Status) bool {
	if st.Peer != nil && st.Peer.Name == b.target {
		return true
	}
	return st.Group != nil && st.Group.Name == b.target
}

// buttonLEDs is the state of the [[button]] LEDs for status: "1 off, 2 on".
func (d *daemon) buttonLEDs() string {
	var parts []string
	for _, b := range d.extra {
		if b.led == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s", b.n, b.led.Pattern()))
	}
	return strings.Join(parts, ", ")
}
