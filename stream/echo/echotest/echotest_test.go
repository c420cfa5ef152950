package echotest

import (
	"testing"
	"time"

	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/room"
)

// In the default room the stage takes the echo well down once it has
// converged, finds the delay again after it jumps, lets the near end
// through in double talk and alone, and lowers the noise. Loose bounds:
// behaviour, not the bench's figures (no speed here).
func TestStageInRoom(t *testing.T) {
	if !echo.Available() {
		t.Skip("compiled without echo cancellation")
	}
	c := echo.Default()
	c.Duck = false // measure the canceller itself
	sc := Script{Far: 6 * time.Second, Jump: 2 * time.Second, JumpBy: 50 * time.Millisecond,
		Double: 3 * time.Second, Near: 3 * time.Second}
	r, err := Run(c, room.Default(), sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.ERLE < 15 || r.ERLEWindows < 1 {
		t.Errorf("ERLE %.1f dB over %d windows, want clearly positive (> 15)", r.ERLE, r.ERLEWindows)
	}
	if !r.Final.DelayKnown || r.Final.Delay < 55*time.Millisecond || r.Final.Delay > 65*time.Millisecond || r.Final.DelayChanges < 3 {
		t.Errorf("delay %v after two jumps (%d changes), want 60 ms found three times", r.Final.Delay, r.Final.DelayChanges)
	}
	if r.DoubleAtt > 6 || r.DoubleSNR < r.RawSNR+3 {
		t.Errorf("double talk: near end %.1f dB quieter, SNR %.1f dB (%.1f dB unprocessed)", r.DoubleAtt, r.DoubleSNR, r.RawSNR)
	}
	if r.NearAtt > 3 || r.NearAtt < -13 {
		t.Errorf("near end alone comes out %.1f dB quieter", r.NearAtt)
	}
	if r.NoiseRed < 6 {
		t.Errorf("noise reduced by %.1f dB, want > 6", r.NoiseRed)
	}
	if r.Latency > 10*time.Millisecond {
		t.Errorf("added latency %v", r.Latency)
	}
}

// With the canceller off nothing takes the echo out; ducking (the
// fallback) then holds it down while the far end talks.
func TestCancellerOffDucks(t *testing.T) {
	c := echo.Default()
	c.Cancel, c.Suppress, c.Denoise, c.AGC = false, false, false, false
	sc := Script{Far: 4 * time.Second, Jump: time.Second, JumpBy: 50 * time.Millisecond, Double: time.Second, Near: 2 * time.Second}
	r, err := Run(c, room.Default(), sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.ERLE < 12 {
		t.Errorf("ducking: echo down by %.1f dB, want > 12", r.ERLE)
	}
	c.Duck = false
	c.Denoise = true // something to run, without the canceller
	if !echo.Available() {
		return
	}
	r, err = Run(c, room.Default(), sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.ERLE > 8 {
		t.Errorf("no canceller, no ducking: echo down by %.1f dB", r.ERLE)
	}
}
