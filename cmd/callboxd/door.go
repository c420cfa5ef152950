package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/device/door"
	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/wire"
)

// DoorConfig is the door opener: a relay on a GPIO output line, pulsed to
// release the door's strike (device/door).
type DoorConfig struct {
	Line      string `toml:"line"`       // "" = no door opener; "sim"; a line: "GPIO22", "gpiochip0:22"
	ActiveLow bool   `toml:"active_low"` // the relay is energised with the line low (many relay modules)
	PulseS    int    `toml:"pulse_s"`    // how long the relay is energised, 1..10 s
	GapS      int    `toml:"gap_s"`      // the least time from the end of one opening to the next, 0..600 s
	Remote    string `toml:"remote"`     // "call": the peer in a call with this box may open it; "never"
}

func defaultDoor() DoorConfig { return DoorConfig{PulseS: 3, GapS: 5, Remote: "call"} }

// validateDoor checks [door]: its line is not another part's.
func (c *Config) validateDoor() error {
	dc := c.Door
	if dc.Line != "" && dc.Line != "sim" {
		if _, err := gpio.ParsePin(dc.Line); err != nil {
			return fmt.Errorf("door.line: %w", err)
		}
		used := map[string]string{c.GPIO.Button: "gpio.button", c.GPIO.LED: "gpio.led"}
		for i, b := range c.Buttons {
			used[b.Line] = fmt.Sprintf("button[%d].line", i)
			used[b.LED] = fmt.Sprintf("button[%d].led", i)
		}
		if other, ok := used[dc.Line]; ok {
			return fmt.Errorf("door.line: line %q is also %s", dc.Line, other)
		}
	}
	if dc.PulseS < 1 || dc.PulseS > 10 {
		return fmt.Errorf("door.pulse_s: %d out of range 1..10", dc.PulseS)
	}
	if dc.GapS < 0 || dc.GapS > 600 {
		return fmt.Errorf("door.gap_s: %d out of range 0..600", dc.GapS)
	}
	if dc.Remote != "call" && dc.Remote != "never" {
		return fmt.Errorf(`door.remote: %q is not "call" or "never"`, dc.Remote)
	}
	return nil
}

// doorRemote says the peer of a call may ask us to open: our hello tells
// it so (wire.HelloDoor).
func (c *Config) doorRemote() bool { return c.Door.Line != "" && c.Door.Remote == "call" }

// doorPart is the daemon's door opener: the opener on its line, and what
// the log says of refusals.
type doorPart struct {
	opener *door.Opener
	sim    *gpio.SimOutput // the line, when simulated
	err    string          // why the line could not be opened; the opener is nil then

	mu         sync.Mutex
	loggedAt   time.Time // the last refusal logged
	suppressed int       // refusals not logged since
}

// hasDoor says a door opener is configured (Home Assistant offers its
// button then); its line may still have failed.
func (d *daemon) hasDoor() bool { return d.cfg.Door.Line != "" }

// errNoDoor is the answer of a box without a door opener.
var errNoDoor = errors.New("no door opener here ([door] line is not set)")

// setupDoor opens the door's line and drives it inactive. A line that
// cannot be opened is reported (the returned problem goes with the other
// GPIO faults into status and the LED), never fatal: the box works
// without its door, which then refuses every opening with the error.
func (d *daemon) setupDoor() (problem string) {
	dc := d.cfg.Door
	if dc.Line == "" {
		return ""
	}
	d.door = &doorPart{}
	var out gpio.Output
	if dc.Line == "sim" {
		d.door.sim = gpio.NewSimOutput()
		out = d.door.sim
	} else {
		po, err := gpio.OpenOutput(gpio.PinConfig{Line: dc.Line, ActiveLow: dc.ActiveLow})
		if err != nil {
			d.log.Error("door opener unusable", "component", "door", "line", dc.Line, "err", err)
			d.door.err = err.Error()
			return fmt.Sprintf("door %s failed: %v", dc.Line, err)
		}
		out = po
	}
	o, err := door.New(out, door.Config{
		Pulse:    time.Duration(dc.PulseS) * time.Second,
		Gap:      time.Duration(dc.GapS) * time.Second,
		OnChange: d.doorChanged,
		Logger:   d.log.With("component", "door"),
	})
	if err != nil { // validated with the config
		out.Close()
		d.door.err = err.Error()
		return "door: " + err.Error()
	}
	d.door.opener = o
	d.log.Info("door opener ready", "component", "door", "line", dc.Line, "active_low", dc.ActiveLow,
		"pulse_s", dc.PulseS, "gap_s", dc.GapS, "remote", dc.Remote)
	if f := o.Status().Fault; f != "" {
		d.log.Error("door relay line cannot be driven", "component", "door", "line", dc.Line, "err", f)
	}
	return ""
}

// closeDoor ends a pulse under way and drives the relay's line inactive:
// the relay is never left energised when the daemon stops.
func (d *daemon) closeDoor() {
	if d.door == nil || d.door.opener == nil {
		return
	}
	if err := d.door.opener.Close(); err != nil {
		d.log.Error("door relay line could not be switched off at shutdown", "component", "door", "err", err)
	}
}

// openDoor opens this box's door for who ("callbox open", "web page
// (192.168.1.5)", "peer hall", "mqtt"): every way of opening it comes
// through here. nil means the relay's pulse started. Otherwise the error
// says why not: errNoDoor, or it wraps door.ErrBusy (a pulse under way),
// door.ErrTooSoon (the minimum gap), door.ErrFault (the line failed) or
// door.ErrClosed (shutting down). Every opening and refusal is logged with
// who asked (refusals at most once a second, the rest counted), shown on
// the LED (an opening flashes door-blink for the pulse), on the screen's
// status lines and in status.
func (d *daemon) openDoor(ctx context.Context, who string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.door == nil {
		return errNoDoor
	}
	if d.door.opener == nil {
		err := fmt.Errorf("%w: the door's line is unusable: %s", door.ErrFault, d.door.err)
		d.doorRefused(who, err)
		return err
	}
	if err := d.door.opener.Open(who); err != nil {
		d.doorRefused(who, err)
		return err
	}
	pulse := time.Duration(d.cfg.Door.PulseS) * time.Second
	d.log.Info("door opened", "component", "door", "who", who, "pulse", pulse)
	d.panel.flashFor(gpio.DoorBlink, pulse)
	return nil
}

// doorRefused logs a refusal: at most one a second, saying how many were
// left out before it (a peer or a script asking in a loop).
func (d *daemon) doorRefused(who string, why error) {
	p := d.door
	p.mu.Lock()
	now := time.Now()
	if now.Sub(p.loggedAt) < time.Second {
		p.suppressed++
		p.mu.Unlock()
		return
	}
	n := p.suppressed
	p.loggedAt, p.suppressed = now, 0
	p.mu.Unlock()
	attrs := []any{"component", "door", "who", who, "why", why.Error()}
	if n > 0 {
		attrs = append(attrs, "not_logged_before", n)
	}
	d.log.Info("door opening refused", attrs...)
}

// remoteDoor decides the request of the peer of the call in progress
// (stream/call's OnDoor, in the phone's goroutine): allowed by
// door.remote = "call", then as any opening. A refusal goes back to the
// peer with its reason.
func (d *daemon) remoteDoor(peer call.Peer) error {
	who := "peer " + peer.Name
	if d.door == nil {
		return &call.DoorError{Result: wire.DoorNone, Text: errNoDoor.Error()}
	}
	if !d.cfg.doorRemote() {
		err := errors.New(`this box opens its door for no peer (door.remote = "never")`)
		d.doorRefused(who, err)
		return &call.DoorError{Result: wire.DoorNotAllowed, Text: err.Error()}
	}
	err := d.openDoor(context.Background(), who)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, door.ErrBusy):
		return &call.DoorError{Result: wire.DoorBusy, Text: err.Error()}
	case errors.Is(err, door.ErrTooSoon):
		return &call.DoorError{Result: wire.DoorTooSoon, Text: err.Error()}
	}
	return &call.DoorError{Result: wire.DoorFault, Text: err.Error()}
}

// doorChanged runs when a pulse starts or ends: the screen's status lines
// and systemd's status follow.
func (d *daemon) doorChanged() {
	if d.mqtt != nil && d.door != nil && d.door.opener != nil {
		d.mqtt.SetDoor(d.door.opener.Status().Active)
	}
	if d.screen != nil {
		d.screen.SetStatus(d.screenLines(d.phone.Status())...)
	}
	d.kickStatus()
}

// doorLine is the screen's line about the door while it opens: "door
// opening for peer hall"; "" otherwise.
func (d *daemon) doorLine() string {
	if d.door == nil || d.door.opener == nil {
		return ""
	}
	st := d.door.opener.Status()
	if !st.Active || st.Last == nil {
		return ""
	}
	return "door opening for " + st.Last.Who
}

// doorStatus is the door opener for status; nil without one.
func (d *daemon) doorStatus() *control.Door {
	if d.door == nil {
		return nil
	}
	dc := d.cfg.Door
	out := &control.Door{Line: dc.Line, State: "idle", PulseS: dc.PulseS, GapS: dc.GapS, Remote: dc.Remote}
	if d.door.sim != nil {
		out.SimChanges = d.door.sim.Changes()
	}
	if d.door.opener == nil {
		out.State, out.Error = "fault: "+d.door.err, d.door.err
		return out
	}
	st := d.door.opener.Status()
	out.Active, out.Until, out.Openings, out.Refusals = st.Active, st.Until, st.Openings, st.Refusals
	event := func(e *door.Event) *control.DoorEvent {
		if e == nil {
			return nil
		}
		return &control.DoorEvent{At: e.At, Who: e.Who, Why: e.Why}
	}
	out.Last, out.LastRefusal = event(st.Last), event(st.LastRefusal)
	switch {
	case st.Fault != "":
		out.State, out.Error = "fault: "+st.Fault, st.Fault
	case st.Active:
		out.State = "opening"
	}
	return out
}

// openDoorOrPeers is what the control API and the web page do: open
// this box's door, or (remote) ask the peer of the call to open its own
// and wait for its answer.
func (d *daemon) openDoorOrPeers(ctx context.Context, remote bool, who string) (control.DoorOpened, error) {
	if remote {
		peer := ""
		if p := d.phone.Status().Peer; p != nil {
			peer = p.Name
		}
		return control.DoorOpened{Door: peer}, d.phone.OpenPeerDoor(ctx)
	}
	return control.DoorOpened{Door: d.cfg.Name, PulseS: d.cfg.Door.PulseS}, d.openDoor(ctx, who)
}

// serveDoorOpen is POST /v1/door/open (`callbox open [--remote]`).
func (d *daemon) serveDoorOpen(w http.ResponseWriter, r *http.Request) {
	var req control.DoorRequest
	if !readJSON(w, r, &req) {
		return
	}
	res, err := d.openDoorOrPeers(r.Context(), req.Remote, "callbox open")
	if err != nil {
		writeErr(w, doorCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// doorCode is the HTTP status of a refused opening: 404 when there is no
// door opener (here, or at the peer), 503 when its line failed, 409 for
// the other refusals.
func doorCode(err error) int {
	var de *call.DoorError
	switch {
	case errors.Is(err, errNoDoor), errors.Is(err, call.ErrNoPeerDoor),
		errors.As(err, &de) && de.Result == wire.DoorNone:
		return http.StatusNotFound
	case errors.Is(err, door.ErrFault), errors.As(err, &de) && de.Result == wire.DoorFault:
		return http.StatusServiceUnavailable
	}
	return http.StatusConflict
}

// OpenDoor is the web page's door buttons: this box's door, or the peer's.
func (b webBackend) OpenDoor(ctx context.Context, remote bool, from string) error {
	who := "web page"
	if host, _, err := net.SplitHostPort(from); err == nil {
		who += " (" + strings.Trim(host, "[]") + ")"
	}
	_, err := b.d.openDoorOrPeers(ctx, remote, who)
	return err
}
