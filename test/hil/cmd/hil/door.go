package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/test/hil/guest"
	"github.com/callbox/callbox/test/hil/rig"
)

// The door scenario's relay line and timing.
const (
	doorLine   = "GPIO22"
	doorPulseS = 2
	doorGapS   = 10
)

// hostLight is the host peer's media in the door scenario.
const hostLight = `[video]
width = 320
height = 240
fps = 5
precomputed = 4
[audio]
codec = "pcm"
`

// sampleLine reads a gpio-sim line for ms, every 5 ms.
func (s *session) sampleLine(ctx context.Context, line string, ms int) (rig.Blink, error) {
	var res guest.Samples
	err := s.agent.Post(ctx, "/v1/gpio/sample", guest.Sample{Line: line, Ms: ms, EveryMs: 5}, &res)
	return rig.BlinkOf(res), err
}

// hostOpensGuestDoor is `callbox open --remote` on the host peer: it asks
// the guest, with which it is in a call, to open its door.
func (s *session) hostOpensGuestDoor(ctx context.Context) error {
	return s.host.Client.Do(ctx, "POST", "/v1/door/open", control.DoorRequest{Remote: true}, nil)
}

// doorCall: the guest has a door opener on a gpio-sim line; the host
// peer, in a call with it, asks it to open: the line pulses for the
// configured time (measured on the line), a second request during the
// pulse and a third inside the minimum gap after it are refused with
// their reasons, and the line stays off.
func doorCall(ctx context.Context, s *session) error {
	err := s.setup(ctx, guestSpec{
		modules: []string{"configfs", "gpio-sim"},
		gpio:    true,
		config: simAV + fmt.Sprintf(`codec = "pcm"
[gpio]
button = "sim"
led = %q
[door]
line = %q
pulse_s = %d
gap_s = %d
`, ledLine, doorLine, doorPulseS, doorGapS),
		// Light media both ways (small video, PCM audio: no Opus for
		// the emulated CPU to code): the requests travel in the call's
		// stream, behind whatever the guest has not read yet, and a
		// guest starved by a busy machine reads the host's default
		// 640x480 30 fps seconds late (3 s and more seen).
		host: testbox.Options{AutoAnswer: true, Extra: hostLight},
	})
	if err != nil {
		return err
	}
	if _, err := s.startDaemon(ctx, "door line open, idle", func(st control.Status) bool {
		return devicesOK(st) && st.Door != nil && st.Door.State == "idle" && st.Phone.State.String() == "idle"
	}); err != nil {
		return err
	}
	b, err := s.sampleLine(ctx, doorLine, 300)
	if err != nil {
		return err
	}
	if !b.Steady(false) {
		return fmt.Errorf("door line at rest: %v, want steady off (driven inactive at start)", b)
	}
	if err := s.hostCall(ctx); err != nil {
		return err
	}
	hs, err := s.host.Status(ctx)
	if err != nil {
		return err
	}
	if !hs.Phone.PeerDoor {
		return fmt.Errorf("the host peer does not see the guest's door opener (its hello's door flag)")
	}

	// Sample the line from 1 s before the request to well after the pulse.
	type sampled struct {
		b   rig.Blink
		err error
	}
	done := make(chan sampled, 1)
	go func() {
		b, err := s.sampleLine(ctx, doorLine, 1000+doorPulseS*1000+2000)
		done <- sampled{b, err}
	}()
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	asked := time.Now()
	if err := s.hostOpensGuestDoor(ctx); err != nil {
		return fmt.Errorf("the host peer asking the guest to open its door: %w", err)
	}
	s.figure("host peer's request answered \"opened\" in %.0f ms", float64(time.Since(asked).Microseconds())/1000)
	err = s.hostOpensGuestDoor(ctx)
	if err == nil || !strings.Contains(err.Error(), "busy") {
		return fmt.Errorf("a second request during the pulse: %v, want it refused (busy)", err)
	}
	s.figure("second request during the pulse refused: %v", err)
	r := <-done
	if r.err != nil {
		return r.err
	}
	b = r.b
	if b.Start || b.End || b.Changes != 2 || len(b.On) != 1 {
		return fmt.Errorf("door line %v (start %v, end %v), want one pulse from off to off", b, b.Start, b.End)
	}
	// A stall of the sampler around an edge sees it late by as much; a
	// starved guest's timer ends the pulse late, never early.
	pulse, slack := b.On[0], 0.0
	for _, st := range b.Stalls {
		if st.AtMs >= b.LastMs-pulse && st.AtMs <= b.LastMs {
			slack += st.Ms
		}
	}
	s.figure("door line %s pulsed %.0f ms (configured %d s; %.0f ms of sampler stalls around it)", doorLine, pulse, doorPulseS, slack)
	if want := doorPulseS * 1000.0; pulse < want-20-slack || pulse > want+500+slack {
		return fmt.Errorf("door line pulsed %.0f ms, want %.0f ms (-20 ms, +500 ms for a starved guest's timer, ± %.0f ms of sampler stalls)", pulse, want, slack)
	}

	// Inside the minimum gap: refused, and the line stays off.
	err = s.hostOpensGuestDoor(ctx)
	if err == nil || !strings.Contains(err.Error(), "too soon") {
		return fmt.Errorf("a request inside the %d s gap: %v, want it refused (too soon)", doorGapS, err)
	}
	s.figure("request inside the gap refused: %v", err)
	if b, err = s.sampleLine(ctx, doorLine, 1000); err != nil {
		return err
	}
	if !b.Steady(false) {
		return fmt.Errorf("door line after the refused request: %v, want steady off", b)
	}
	gs, err := s.agent.Status(ctx)
	if err != nil {
		return err
	}
	d := gs.Door
	if d == nil || d.Openings != 1 || d.Refusals != 2 || d.Active || d.Last == nil || d.Last.Who != "peer "+hostName ||
		d.LastRefusal == nil || !strings.HasPrefix(d.LastRefusal.Why, "too soon") {
		return fmt.Errorf("guest's door status: %+v", d)
	}
	hs, err = s.host.Status(ctx)
	if err != nil {
		return err
	}
	if a := hs.Phone.DoorAsk; a == nil || a.Opened || !strings.Contains(a.Answer, "too soon") {
		return fmt.Errorf("host peer's last request: %+v, want the guest's refusal", a)
	}
	if gs.Phone.State.String() != "in call" || hs.Phone.State.String() != "in call" {
		return fmt.Errorf("the call did not go on: guest %v, host %v (%q)", gs.Phone.State, hs.Phone.State, hs.Phone.LastEnd)
	}
	if _, err := s.hostHangup(ctx); err != nil {
		return err
	}
	return s.daemonUnchanged(ctx)
}
