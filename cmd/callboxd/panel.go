package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/call"
)

// devHealth is where a device stands.
type devHealth uint8

const (
	devStarting devHealth = iota // not opened yet
	devUp                        // works
	devDown                      // failed and being retried
	devFailed                    // failed and given up on
)

func (h devHealth) String() string {
	switch h {
	case devUp:
		return "up"
	case devDown:
		return "down"
	case devFailed:
		return "failed"
	}
	return "starting"
}

// devState is a device's state: its health and, when it is not up, why.
// A device that is up may stand by: closed because nobody needs it, last
// opened without a fault and (where that can be checked) still present.
type devState struct {
	health  devHealth
	detail  string
	standby bool
}

// standbyDetail says what standing by means, in status.
const standbyDetail = "standby: closed while not needed"

func stateUp() devState                { return devState{health: devUp} }
func stateStandby() devState           { return devState{health: devUp, standby: true} }
func stateDown(detail string) devState { return devState{health: devDown, detail: detail} }
func stateFailed(err error) devState   { return devState{health: devFailed, detail: err.Error()} }
func (s devState) bad() bool           { return s.health == devDown || s.health == devFailed }
func (s devState) is(h devHealth) bool { return s.health == h }

// running says the device is up and open: it must deliver.
func (s devState) running() bool { return s.health == devUp && !s.standby }

// String is the state for people: "ok", "starting", "down: …", "failed: …".
// A device standing by is "ok" too (its detail in the control API's
// device list says so): it worked and is there.
func (s devState) String() string {
	switch s.health {
	case devUp:
		return "ok"
	case devStarting:
		return "starting"
	}
	return s.health.String() + ": " + s.detail
}

// The devices a panel keeps the state of, in the order status shows them.
const (
	devCamera = iota
	devMic
	devSpeaker
	numDevs
)

var devNames = [numDevs]string{"camera", "microphone", "speaker"}

// flashFor is how long a flash (an error, a pairing result) shows.
const flashFor = 2 * time.Second

// panel is what the box shows of itself: the LED's pattern, chosen from
// the call state, the pairing state and what is wrong with the box (a
// device down, the button or LED unusable, a peer store that had to be
// recovered), with a short flash over it now and then. Safe for concurrent
// use. It owns its flash timer: Close stops it and waits for it.
type panel struct {
	led gpio.LED
	// now returns the call and pairing state, for the end of a flash. It
	// must not block.
	now      func() (call.State, string)
	onChange func() // a state changed: the status line may have too

	mu       sync.Mutex
	dev      [numDevs]devState
	gpio     string // what is wrong with the button or LED; empty when fine
	store    string // what was done about a corrupt peer store; empty when fine
	flashing bool
	timer    *time.Timer
	closed   bool
	timers   sync.WaitGroup // flash callbacks scheduled or running
}

func newPanel(led gpio.LED, now func() (call.State, string), onChange func()) *panel {
	if onChange == nil {
		onChange = func() {}
	}
	return &panel{led: led, now: now, onChange: onChange}
}

// setDevice records device i's state; the LED follows if it changed.
func (p *panel) setDevice(i int, s devState) {
	p.mu.Lock()
	changed := p.dev[i] != s
	p.dev[i] = s
	p.mu.Unlock()
	if changed {
		p.refresh()
	}
	p.onChange()
}

// device is device i's state.
func (p *panel) device(i int) devState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dev[i]
}

// setGPIO records what is wrong with the button or LED ("" when fine).
func (p *panel) setGPIO(s string) {
	p.mu.Lock()
	p.gpio = s
	p.mu.Unlock()
	p.refresh()
}

// setStore records what was done about a corrupt peer store ("" once the
// user paired again, which settles it).
func (p *panel) setStore(s string) {
	p.mu.Lock()
	changed := p.store != s
	p.store = s
	p.mu.Unlock()
	if changed {
		p.refresh()
		p.onChange()
	}
}

// problems lists what is wrong with the box, for status lines.
func (p *panel) problems() (gpio, store string, dev [numDevs]devState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gpio, p.store, p.dev
}

// devices is the device states for the control API.
func (p *panel) devices(names [numDevs]string) []control.Device {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]control.Device, numDevs)
	for i := range out {
		out[i] = control.Device{Name: devNames[i], Device: names[i], Health: p.dev[i].health.String(), Detail: p.dev[i].detail}
		if p.dev[i].standby {
			out[i].Detail = standbyDetail
		}
	}
	return out
}

// pattern is what the LED shows for a call and pairing state: off when
// idle, fast blink when calling or ringing, on in a call, the pairing
// blink in a pairing window; and the error pattern when idle with
// something wrong, so a box by the door shows it needs a look.
func (p *panel) pattern(cs call.State, pairing string) gpio.Pattern {
	switch cs {
	case call.Calling, call.Ringing:
		return gpio.FastBlink
	case call.InCall:
		return gpio.On
	}
	if pairing == control.PairWaiting || pairing == control.PairConfirm {
		return gpio.PairBlink
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.dev {
		if d.bad() {
			return gpio.ErrorBlink
		}
	}
	if p.gpio != "" || p.store != "" {
		return gpio.ErrorBlink
	}
	return gpio.Off
}

// show sets the LED for a call and pairing state, unless a flash is on
// (its end shows the state then).
func (p *panel) show(cs call.State, pairing string) {
	pat := p.pattern(cs, pairing)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flashing || p.closed {
		return
	}
	p.led.Set(pat)
}

func (p *panel) refresh() { p.show(p.now()) }

// flash shows pat for flashFor, then the usual pattern again.
func (p *panel) flash(pat gpio.Pattern) { p.flashFor(pat, flashFor) }

// flashFor shows pat for d, then the usual pattern again.
func (p *panel) flashFor(pat gpio.Pattern, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.timer != nil && p.timer.Stop() {
		p.timers.Done() // the earlier flash's end will not run
	}
	p.flashing = true
	p.led.Set(pat)
	p.timers.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer p.timers.Done()
		p.mu.Lock()
		if p.timer != t || p.closed {
			p.mu.Unlock()
			return
		}
		p.flashing = false
		p.timer = nil
		p.mu.Unlock()
		p.refresh()
	})
	p.timer = t
}

// Close stops a flash under way and waits for its timer; later calls do
// nothing to the LED. The LED itself is the caller's to close.
func (p *panel) Close() {
	p.mu.Lock()
	p.closed = true
	if p.timer != nil && p.timer.Stop() {
		p.timers.Done()
	}
	p.timer = nil
	p.mu.Unlock()
	p.timers.Wait()
}

// statusLine appends what is wrong with the box to a status line.
func (p *panel) statusLine(b *strings.Builder) {
	gp, store, dev := p.problems()
	if gp != "" {
		fmt.Fprintf(b, "; %s", gp)
	}
	if store != "" {
		fmt.Fprintf(b, "; %s", store)
	}
	for i, d := range dev {
		if d.bad() {
			fmt.Fprintf(b, "; %s %s", devNames[i], d)
		}
	}
}
