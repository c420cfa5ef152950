package main

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/call"
)

func TestPanelPattern(t *testing.T) {
	led := gpio.NewSimLED()
	defer led.Close()
	cs, pairing := call.Idle, control.PairOff
	p := newPanel(led, func() (call.State, string) { return cs, pairing }, nil)
	defer p.Close()
	check := func(what string, want gpio.Pattern) {
		t.Helper()
		p.refresh()
		if got := led.Pattern(); got != want {
			t.Errorf("%s: LED %v, want %v", what, got, want)
		}
	}
	check("idle, all well", gpio.Off)
	cs = call.Ringing
	check("ringing", gpio.FastBlink)
	cs = call.InCall
	p.setDevice(devCamera, stateDown("gone; retrying in 1s"))
	check("in call with the camera down", gpio.On)
	cs = call.Idle
	check("idle with the camera down", gpio.ErrorBlink)
	p.setDevice(devCamera, stateUp())
	check("camera back", gpio.Off)
	p.setDevice(devMic, stateFailed(errors.New("no card")))
	check("microphone failed", gpio.ErrorBlink)
	p.setDevice(devMic, stateUp())
	p.setStore("peer store was corrupt")
	check("recovered peer store", gpio.ErrorBlink)
	pairing = control.PairWaiting
	check("pairing window", gpio.PairBlink)
	pairing = control.PairOff
	p.setStore("")
	check("settled", gpio.Off)

	var b strings.Builder
	p.setDevice(devSpeaker, stateDown("unplugged"))
	p.setGPIO("button GPIO17 failed: busy")
	p.statusLine(&b)
	if got := b.String(); got != "; button GPIO17 failed: busy; speaker down: unplugged" {
		t.Errorf("status line %q", got)
	}
	devs := p.devices([numDevs]string{"sim", "hw:1", "hw:2"})
	if !devs[0].Up() || devs[2].Up() || devs[2].Health != "down" || devs[2].Detail != "unplugged" {
		t.Errorf("devices %+v", devs)
	}
}

// TestPanelFlashOwnsItsTimer: a flash shows for flashFor, then the state
// again; a flash during a flash restarts the time; Close stops a flash
// under way and no timer fires after it.
func TestPanelFlashOwnsItsTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		led := gpio.NewSimLED()
		defer led.Close()
		p := newPanel(led, func() (call.State, string) { return call.Idle, control.PairOff }, nil)
		p.flash(gpio.ErrorBlink)
		time.Sleep(flashFor / 2)
		p.flash(gpio.On)
		time.Sleep(flashFor - time.Millisecond)
		if got := led.Pattern(); got != gpio.On {
			t.Fatalf("during the second flash: %v", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := led.Pattern(); got != gpio.Off {
			t.Fatalf("after the flash: %v, want the idle pattern", got)
		}
		p.flash(gpio.ErrorBlink)
		p.Close()
		time.Sleep(2 * flashFor)
		synctest.Wait()
		if got := led.Pattern(); got != gpio.ErrorBlink {
			t.Fatalf("after Close the flash's end changed the LED to %v", got)
		}
		p.flash(gpio.On) // does nothing after Close
		if got := led.Pattern(); got != gpio.ErrorBlink {
			t.Fatalf("a flash after Close changed the LED to %v", got)
		}
	})
}
